"""The embedded OCR demos: ``[workload] name = "ocr-lines"`` (text recognition, CER) and
``"ocr-pages"`` (text detection, hmean).

Like the other demos they run offline and take the path a user's data takes: on first use a
seeded renderer (``workloads/demos/ocr_data.py``) writes the images and their PaddleOCR label
file under ``results/datasets/``, and the workload is then exactly a user's ONNX workload
(``[workload] onnx``, ``task``, ``input_size``, ``[workload.data] eval``, ``eval_labels``,
``calib``) over those files. The models are PaddleOCR's PP-OCRv4 recogniser and DB text detector
as the ``rapidocr-onnxruntime`` 1.4.4 wheel ships them (Apache-2.0); the wheel declares
``opencv-python``, which would clash with the ``opencv-python-headless`` the farm uses, so it is
installed without its dependencies (``pip install --no-deps rapidocr-onnxruntime==1.4.4``, as
``make`` does) and only its model files are read: nothing of it is imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from farm._validate import Fields
from farm.errors import SpecError
from workloads.datasets.config import DataConfig
from workloads.demos import ocr_data
from workloads.sources.onnx_file import OnnxWorkload

#: The wheel the models come from, and how to install it.
WHEEL = "rapidocr_onnxruntime"
INSTALL = "pip install --no-deps rapidocr-onnxruntime==1.4.4"
#: How errors about the demos' own files name their origin.
SOURCE = "the OCR demo"
DATA_SEED = 0


#: Demo name -> (model file in the wheel, [workload] table, data set settings).
DEMOS: dict[str, dict[str, Any]] = {
    "ocr-lines": {
        "model": "ch_PP-OCRv4_rec_infer.onnx",
        "workload": {"task": "text_recognition", "input_size": [48, 320]},
        "data": {"n_eval": 120, "n_calib": 32},
    },
    "ocr-pages": {
        "model": "ch_PP-OCRv4_det_infer.onnx",
        "workload": {"task": "text_detection", "input_size": [320, 448]},
        "data": {"n_eval": 24, "n_calib": 8, "size": (320, 448)},
    },
}


def model_file(name: str) -> Path:
    """A model file of the ``rapidocr-onnxruntime`` wheel (found, never imported)."""
    spec = importlib.util.find_spec(WHEEL)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0]) / "models" / name if locations else None
    if path is None or not path.is_file():
        raise SpecError(
            SOURCE,
            "workload.name",
            f"the {WHEEL} wheel installed, whose model files the OCR demos run ({INSTALL}; "
            "without its dependencies: it declares opencv-python, which clashes with the "
            "farm's opencv-python-headless)",
            str(path) if path is not None else "not installed",
        )
    return path


class OcrDemo(OnnxWorkload):
    """An OCR demo: the wheel's model on the rendered data, as a user's ONNX workload."""

    def __init__(self, name: str, results_dir: Path) -> None:
        demo = DEMOS[name]
        paths = _dataset(name, Path(results_dir), demo["data"])
        cfg = DataConfig(
            eval=paths.eval_images,
            eval_labels=paths.eval_labels,
            calib=paths.calib_images,
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            source=SOURCE,
        )
        section = Fields(dict(demo["workload"]), SOURCE, "workload")
        super().__init__(model_file(demo["model"]), cfg, section, demo["workload"]["task"])
        self.name = name

    def recipe(self) -> dict[str, Any]:
        return {**super().recipe(), "demo": self.name, "generator": ocr_data.GENERATOR_VERSION}


def _dataset(name: str, results_dir: Path, settings: dict[str, Any]) -> Any:
    root = results_dir / "datasets" / f"{name}-v{ocr_data.GENERATOR_VERSION}"
    if name == "ocr-lines":
        return ocr_data.write_lines_dataset(root, seed=DATA_SEED, **settings)
    return ocr_data.write_pages_dataset(root, seed=DATA_SEED, **settings)
