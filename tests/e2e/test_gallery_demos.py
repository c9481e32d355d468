"""The error gallery of the shapes demos, seen in a real headless Chromium: the fp32 and ORT
int8 detectors and segmenters evaluated through the farm's evaluate step, the images whose own
score moved drawn by the tasks' hooks (boxes, masks), embedded in one page, screenshotted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.browser import chromium, gallery_page, screenshot_is_drawn

CONTRACT = {"min_duration_s": 0.1, "max_duration_s": 0.2, "min_samples": 8}


@pytest.mark.slow
@pytest.mark.parametrize("demo", ["shapes-detect", "shapes-segment"])
def test_the_gallery_of_a_shapes_demo_is_drawn_in_chromium(demo: str, tmp_path: Path) -> None:
    import optimizers
    from dashboards.gallery import changed, html_section
    from farm.engine import CandidateRunner, reference_predictions
    from farm.search.candidate import Candidate
    from targets.base import RuntimeOptions
    from workloads import load_workload
    from workloads.drawing import to_pixels

    chromium()
    workload = load_workload({"name": demo}, tmp_path, tmp_path / "results")
    data, task = workload.data(), workload.task
    source = workload.source_artifact(tmp_path / "models")
    ctx = optimizers.BuildContext(data=data, seed=0)
    fp32 = optimizers.apply("export_onnx", {}, source, ctx)
    int8 = optimizers.apply("quantize_ort", {}, fp32, ctx)
    reference = reference_predictions(source, data, task)
    runner = CandidateRunner(source, data, reference, task, contract=CONTRACT, here=True)
    candidate = Candidate(workload.recipe_hash, "cpu-onnxruntime", (), RuntimeOptions(threads=1))
    base = runner.evaluate(candidate, fp32).evidence
    cand = runner.evaluate(candidate, int8).evidence
    assert base is not None and cand is not None
    mean, std = data.normalization or ((0.0,) * 3, (1.0,) * 3)

    def pixels(i: int) -> np.ndarray:
        return to_pixels(data.eval.x[i], mean, std, data.layout)

    # any image whose own score moved at all, so that the page has images to show
    tiles = changed(task, pixels, base, cand, 0.0, ("cpu-onnxruntime", 1), limit=4)
    assert tiles, "int8 moved no image's own score"
    page = gallery_page(tmp_path, html_section(tiles, []))
    assert page.read_text().count("<img ") == len(tiles)
    screenshot_is_drawn(page)
