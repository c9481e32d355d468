"""Text detection: ICDAR 2015 hmean equal to a brute-force matcher written from the protocol's
text, DB post-processing finding the regions of a probability map, quads mapped back to the
original page, per-image evidence that recomputes hmean on any resample, and the contract."""

from __future__ import annotations

import numpy as np
import pytest
from contracts.task_contract import TaskCase, TaskContract

from workloads.data import Split, WorkloadData
from workloads.datasets.ocr_labels import TextRegion
from workloads.tasks import Task, TextDetection, _icdar, higher_is_better
from workloads.tasks._db import db_quads
from workloads.tasks.text_detection import Quads, to_original

# -- an independent implementation of the protocol ----------------------------------------------


def shoelace(poly: list[tuple[float, float]]) -> float:
    return (
        abs(
            sum(
                x0 * y1 - x1 * y0
                for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1], strict=True)
            )
        )
        / 2
    )


def clip_convex(subject: list, clip: list) -> list:
    """Sutherland–Hodgman: ``subject`` clipped by the convex polygon ``clip``."""
    sign = (
        1.0
        if sum(
            x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(clip, clip[1:] + clip[:1], strict=True)
        )
        > 0
        else -1.0
    )

    def inside(p, a, b):
        return sign * ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])) >= 0

    def cut(p, q, a, b):
        x1, y1, x2, y2 = *p, *q
        x3, y3, x4, y4 = *a, *b
        den = (x1 - x2) * (y3 - y4) - (y1 - y2) * (x3 - x4)
        t = ((x1 - x3) * (y3 - y4) - (y1 - y3) * (x3 - x4)) / den
        return (x1 + t * (x2 - x1), y1 + t * (y2 - y1))

    out = list(subject)
    for a, b in zip(clip, clip[1:] + clip[:1], strict=True):
        points, out = out, []
        for p, q in zip(points, points[1:] + points[:1], strict=True):
            if inside(q, a, b):
                if not inside(p, a, b):
                    out.append(cut(p, q, a, b))
                out.append(q)
            elif inside(p, a, b):
                out.append(cut(p, q, a, b))
        if not out:
            return []
    return out


def brute_force_counts(gts: list, ignore: list, dets: list) -> tuple[int, int, int]:
    """(matched, gt_care, det_care) of one image, by the RRC script's rules."""
    inter = lambda a, b: shoelace(clip_convex(a, b)) if clip_convex(a, b) else 0.0  # noqa: E731
    det_dc = [
        any(ig and inter(g, d) / shoelace(d) > 0.5 for g, ig in zip(gts, ignore, strict=True))
        for d in dets
    ]
    g_used, d_used, matched = set(), set(), 0
    for gi, g in enumerate(gts):
        for di, d in enumerate(dets):
            if gi in g_used or di in d_used or ignore[gi] or det_dc[di]:
                continue
            shared = inter(g, d)
            if shared / (shoelace(g) + shoelace(d) - shared) > 0.5:
                g_used.add(gi)
                d_used.add(di)
                matched += 1
    return matched, len(gts) - sum(ignore), len(dets) - sum(det_dc)


def random_quad(rng: np.random.Generator, near: np.ndarray | None = None) -> np.ndarray:
    """A rotated rectangle (convex, counter-clockwise or clockwise), sometimes near another."""
    if near is not None:
        c = near.mean(axis=0) + rng.normal(0, 4, 2)
        w, h = np.linalg.norm(near[1] - near[0]) * rng.uniform(0.7, 1.3), rng.uniform(6, 20)
    else:
        c, w, h = rng.uniform(20, 180, 2), rng.uniform(10, 80), rng.uniform(6, 20)
    a = rng.uniform(-0.4, 0.4)
    u, v = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    quad = np.array(
        [
            c - u * w / 2 - v * h / 2,
            c + u * w / 2 - v * h / 2,
            c + u * w / 2 + v * h / 2,
            c - u * w / 2 + v * h / 2,
        ]
    )
    return quad[::-1].copy() if rng.random() < 0.3 else quad


def test_hmean_equals_a_brute_force_icdar_matcher_on_random_quads() -> None:
    rng = np.random.default_rng(0)
    task = TextDetection()
    preds, truth, want = [], [], np.zeros(3)
    for _ in range(25):
        gts = [random_quad(rng) for _ in range(int(rng.integers(0, 6)))]
        ignore = [bool(rng.random() < 0.2) for _ in gts]
        dets = [random_quad(rng, g) for g in gts if rng.random() < 0.8]
        dets += [random_quad(rng) for _ in range(int(rng.integers(0, 3)))]
        rng.shuffle(dets)
        preds.append(Quads(np.asarray(dets).reshape(-1, 4, 2), np.ones(len(dets))))
        truth.append(
            tuple(
                TextRegion(tuple(map(tuple, g)), "###" if i else "t")
                for g, i in zip(gts, ignore, strict=True)
            )
        )
        want += brute_force_counts(
            [list(map(tuple, g)) for g in gts], ignore, [list(map(tuple, d)) for d in dets]
        )
    m, g, d = want
    p, r = m / d, m / g
    split = Split(np.zeros((25, 1), np.float32), truth=tuple(truth))
    data = WorkloadData(None, split, split, 0, (1,), True)
    got = task.quality(preds, split, None, data)
    assert 0 < m < min(g, d)  # the draw exercises matches and misses
    assert got["precision"] == pytest.approx(p, abs=1e-12)
    assert got["recall"] == pytest.approx(r, abs=1e-12)
    assert got["hmean"] == pytest.approx(2 * p * r / (p + r), abs=1e-12)
    assert higher_is_better("hmean") and higher_is_better("hmean_vs_fp32")


def test_the_match_is_strictly_above_half_and_one_to_one() -> None:
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    half = np.array([[0, 0], [10, 0], [10, 5], [0, 5]], float)  # IoU exactly 0.5: no match
    assert _icdar.evaluate_image([square], [False], [half]).matched == 0
    twice = _icdar.evaluate_image([square], [False], [square, square])
    assert (twice.matched, twice.gt_care, twice.det_care) == (1, 1, 2)
    dont_care = _icdar.evaluate_image([square], [True], [half])
    assert (dont_care.matched, dont_care.gt_care, dont_care.det_care) == (0, 0, 0)


def test_non_convex_polygons_are_scored_with_pyclipper() -> None:
    l_shape = np.array([[0, 0], [10, 0], [10, 4], [4, 4], [4, 10], [0, 10]], float)
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    shared = _icdar.intersection(l_shape, square, (False, True))
    assert shared == pytest.approx(64.0, abs=1e-3)
    bowtie = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], float)
    assert not _icdar.is_simple(bowtie)


def prob_map(rects: list[tuple[int, int, int, int]], size=(64, 96)) -> np.ndarray:
    prob = np.full(size, 0.02, np.float32)
    for x0, y0, x1, y1 in rects:
        prob[y0:y1, x0:x1] = 0.95
    return prob


def test_db_post_processing_finds_each_region_grown_back_by_unclip() -> None:
    rects = [(10, 8, 60, 18), (20, 40, 90, 52)]
    quads, scores = db_quads(prob_map(rects), 0.3, 0.5, 1.6, 1000, False)
    assert len(quads) == 2 and (scores > 0.9).all()
    for x0, y0, x1, y1 in rects:
        # DB's map is the text shrunk by area * ratio / perimeter: unclip grows it back by that
        w, h = x1 - x0, y1 - y0
        grow = w * h * 1.6 / (2 * (w + h))
        quad = min(quads, key=lambda q: abs(q[:, 0].min() - x0) + abs(q[:, 1].min() - y0))
        cx, cy = quad.mean(axis=0)
        assert (cx, cy) == pytest.approx(((x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2), abs=1.0)
        assert np.ptp(quad[:, 0]) == pytest.approx(w - 1 + 2 * grow, abs=2.0)
        assert np.ptp(quad[:, 1]) == pytest.approx(h - 1 + 2 * grow, abs=2.0)
        assert quad[0, 0] <= quad[1, 0] and quad[0, 1] <= quad[3, 1]  # clockwise from top-left
    with_dilation, _ = db_quads(prob_map(rects), 0.3, 0.5, 1.6, 1000, True)
    assert len(with_dilation) == 2
    assert len(db_quads(prob_map([(5, 5, 7, 6)]), 0.3, 0.5, 1.6, 1000, False)[0]) == 0


def test_quads_go_back_to_the_original_page() -> None:
    quads = np.array([[[10, 20], [50, 20], [50, 30], [10, 30]]], np.float32)
    info = {"scale": (0.5, 0.5), "pad": (4.0, 0.0), "orig_hw": (100, 200)}
    back, _ = to_original(quads, np.ones(1), info)
    np.testing.assert_allclose(back[0], [[20, 32], [100, 32], [100, 52], [20, 52]])


def grown(rect: tuple[int, int, int, int]) -> tuple[tuple[float, float], ...]:
    """The text region whose DB map is ``rect`` (grown back as unclip does)."""
    x0, y0, x1, y1 = rect
    g = (x1 - x0) * (y1 - y0) * 1.6 / (2 * (x1 - x0 + y1 - y0))
    return ((x0 - g, y0 - g), (x1 - 1 + g, y0 - g), (x1 - 1 + g, y1 - 1 + g), (x0 - g, y1 - 1 + g))


class TestTextDetectionContract(TaskContract):
    @pytest.fixture
    def task(self) -> Task:
        return TextDetection(dilation=False)

    @pytest.fixture
    def case(self) -> TaskCase:
        rects = [
            [(10, 8, 60, 18), (20, 40, 90, 52)],
            [(5, 5, 40, 15)],
            [],
            [(30, 20, 80, 34), (2, 50, 30, 60)],
            [(10, 30, 70, 44)],
        ]
        maps = np.stack([prob_map(r)[None] for r in rects])
        truth = []
        for i, page in enumerate(rects):
            regions = [  # the text as DB's map shows it shrunk
                TextRegion(grown(rect), "###" if i == 3 and k else "w")
                for k, rect in enumerate(page)
            ]
            truth.append(tuple(regions))
        truth[4] = (TextRegion(((0, 0), (9, 0), (9, 9), (0, 9)), "missed"),)
        infos = tuple({"scale": (1.0, 1.0), "pad": (0.0, 0.0), "orig_hw": (64, 96)} for _ in rects)
        ids = tuple(f"pages/p{i}.png" for i in range(5))
        split = Split(np.zeros((5, 3, 64, 96), np.float32), None, tuple(truth), infos, ids)
        data = WorkloadData(None, split, split, 0, (3, 64, 96), True)
        return TaskCase(
            [[maps[:3]], [maps[3:]]],
            [list(infos[:3]), list(infos[3:])],
            split,
            data,
            {"dilation": False},
        )

    def test_evidence_recomputes_hmean_on_any_resample(self, task: Task, case: TaskCase) -> None:
        preds = self.predictions(task, case)
        ev = task.evidence(preds, case.split, None)
        got = task.quality(preds, case.split, None, case.data)
        assert 0 < got["hmean"] < 1
        assert ev.ids == case.split.ids and ev.predicted[0] == "2 regions"
        assert task.resampled_quality(ev, np.ones((1, 5)))[0] == got["hmean"]
        rng = np.random.default_rng(0)
        for row in rng.multinomial(5, np.full(5, 0.2), size=6):
            index = np.repeat(np.arange(5), row)
            sub = case.split.subset(index)
            want = task.quality(task.select(preds, index), sub, None, case.data)["hmean"]
            assert task.resampled_quality(ev, row[None])[0] == pytest.approx(want, abs=1e-12)


def test_quads_given_by_the_model_are_kept_above_the_box_threshold() -> None:
    task = TextDetection(outputs="quads")
    rows = np.zeros((1, 3, 9), np.float32)
    rows[0, 0] = [10, 20, 50, 20, 50, 30, 10, 30, 0.9]
    rows[0, 1] = [0, 0, 5, 0, 5, 5, 0, 5, 0.2]  # under box_threshold: padding
    info = {"scale": (0.5, 0.5), "pad": (0.0, 0.0), "orig_hw": (100, 200)}
    (got,) = task.decode([rows], [info])
    assert len(got) == 1 and got.scores[0] == pytest.approx(0.9)
    np.testing.assert_allclose(got.quads[0], [[20, 40], [100, 40], [100, 60], [20, 60]])
    task.check_outputs([rows], "the model")
    with pytest.raises(ValueError, match="the model"):
        task.check_outputs([np.zeros((1, 1, 8, 8), np.float32)], "the model")
    with pytest.raises(ValueError, match=r"\[N, K, 9\]"):
        task.check_output_dims({"out": ("N", 100, 8)}, "N")
    assert task.params() == {"outputs": "quads"}
