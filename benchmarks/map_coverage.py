"""How often does a 95 % paired interval of a COCO mAP change cover the true change?

A pool of ``--pool`` images is drawn once from a generator of two detectors (the candidate's
boxes noisier, ``--candidate-noise`` pixels against the baseline's 2, and its scores jittered
by ``--score-jitter``, as a quantized model's); the true change is the mAP difference on the
whole pool (the population value, not one run's). Each run draws ``--images`` distinct images
from the pool (seeded by the run), resamples them ``--resamples`` times (the farm's seeded
paired bootstrap) and forms four 95 % intervals from the same resamples: the farm's (what
``compare`` records for detection: the percentile interval centred on the estimate), the plain
percentile, Efron's bias-corrected percentile (BC) and the normal interval (estimate ± 1.96
bootstrap standard deviations). Prints, every 100 runs and at the end, each one's coverage
(the issue's band: 93-97 %), the estimate's bias against the truth, the bootstrap's own
estimate of that bias, and the spread of the estimate and of the resamples.

    .venv/bin/python benchmarks/map_coverage.py --images 1000 --runs 1000
    .venv/bin/python benchmarks/map_coverage.py --images 250 --candidate-noise 3 --score-jitter 1
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np

from farm.evidence.stats import bootstrap_weights, centred_interval, percentile_interval
from workloads.tasks import Detection
from workloads.tasks._coco_boot import match, resampled_map

Arrays = dict[str, np.ndarray]
METHODS = ("farm", "percentile", "bc", "normal")


def population(n: int, seed: int, noise: float, jitter: float) -> tuple[Arrays, Arrays]:
    """COCO matchings of two detectors on ``n`` generated images (1-4 boxes of 3 categories,
    0-2 false positives each): the candidate's boxes are ``noise`` pixels off where the
    baseline's are 2, and its scores jittered by ``jitter`` on the logit scale."""
    rng = np.random.default_rng(seed)
    truth: list[dict[str, Any]] = []
    base: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    cand: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for _ in range(n):
        k = int(rng.integers(1, 5))
        xy = rng.uniform(0, 150, (k, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 50, (k, 2))], 1)
        labels = rng.integers(1, 4, k)
        truth.append({"boxes": boxes, "labels": labels})
        extra = rng.uniform(0, 150, (int(rng.integers(0, 3)), 2))
        fp = np.concatenate([extra, extra + 20], 1)
        fp_labels = rng.integers(1, 4, len(extra))
        score = rng.random(k + len(extra))
        offset = rng.normal(0, 1, boxes.shape)
        for out, sd, shake in ((base, 2.0, 0.0), (cand, noise, jitter)):
            found = np.concatenate([boxes + offset * sd, fp])
            # jittered on the logit scale: continuous scores in (0, 1), no ties (clipping to
            # [0, 1] would tie many scores at 1.0, which makes the mAP of the pool depend on
            # its size: the precision envelope takes the best point inside a tied block)
            s = 1 / (1 + np.exp(-(np.log(score / (1 - score)) + rng.normal(0, shake, len(score)))))
            out.append((found, s, np.concatenate([labels, fp_labels])))
    ids = list(range(1, n + 1))
    return match(ids, truth, base, [1, 2, 3]), match(ids, truth, cand, [1, 2, 3])


def subset(arrays: Arrays, rows: np.ndarray) -> Arrays:
    """The matching of the images ``rows`` (distinct, sorted) of a pool's matching."""
    where = np.full(len(arrays["gt_count"]), -1)
    where[rows] = np.arange(len(rows))
    keep = where[arrays["det_image"]] >= 0
    sub = {k: v[keep] for k, v in arrays.items() if k.startswith("det_")}
    sub["det_image"] = where[arrays["det_image"][keep]].astype(np.int32)
    sub["gt_count"] = arrays["gt_count"][rows]
    return sub


def intervals(d: np.ndarray, est: float) -> dict[str, tuple[float, float]]:
    """The four 95 % intervals of the resampled changes ``d`` around the estimate ``est``."""
    normal = NormalDist()
    z = normal.inv_cdf(0.975)
    below = (np.sum(d < est) + 0.5 * np.sum(d == est)) / len(d)
    z0 = normal.inv_cdf(min(max(below, 0.5 / len(d)), 1 - 0.5 / len(d)))
    bc = np.quantile(d, [normal.cdf(2 * z0 - z), normal.cdf(2 * z0 + z)])
    farm = centred_interval if Detection.interval_around_estimate else None
    return {
        "farm": farm(d, est, 0.95) if farm else percentile_interval(d, 0.95),
        "percentile": percentile_interval(d, 0.95),
        "bc": (float(bc[0]), float(bc[1])),
        "normal": (est - z * float(d.std()), est + z * float(d.std())),
    }


def coverage(
    pool: int = 30000,
    images: int = 1000,
    runs: int = 1000,
    resamples: int = 1000,
    noise: float = 2.3,
    jitter: float = 0.2,
    report: Callable[[str], None] = print,
) -> dict[str, float]:
    """Each method's share of ``runs`` whose interval covered the pool's true change."""
    start = time.perf_counter()
    base, cand = population(pool, 0, noise, jitter)
    everyone = np.ones((1, pool))
    truth = float(resampled_map(cand, everyone)[0] - resampled_map(base, everyone)[0])
    report(f"pool {pool} images, true change {truth:+.5f}; {images} images per run")
    covered = dict.fromkeys(METHODS, 0)
    est, boot_bias, boot_sd = [], [], []
    for run in range(runs):
        rows = np.sort(np.random.default_rng(run).choice(pool, images, replace=False))
        b, c = subset(base, rows), subset(cand, rows)
        whole = np.ones((1, images))
        e = float(resampled_map(c, whole)[0] - resampled_map(b, whole)[0])
        w = np.concatenate(list(bootstrap_weights(images, resamples, run)))
        d = resampled_map(c, w) - resampled_map(b, w)
        est.append(e)
        boot_bias.append(d.mean() - e)
        boot_sd.append(d.std())
        for name, (lo, hi) in intervals(d, e).items():
            covered[name] += lo <= truth <= hi
        if (run + 1) % 100 == 0 or run + 1 == runs:
            shares = "  ".join(f"{k} {v / (run + 1):6.1%}" for k, v in covered.items())
            report(
                f"{run + 1:5d} runs  coverage: {shares}  bias {np.mean(est) - truth:+.5f}  "
                f"bootstrap's bias {np.mean(boot_bias):+.5f} (sd {np.std(boot_bias):.5f})  "
                f"sd {np.std(est):.5f}  bootstrap sd {np.mean(boot_sd):.5f}  "
                f"({time.perf_counter() - start:.0f} s)"
            )
    return {k: v / runs for k, v in covered.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=30000)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--candidate-noise", type=float, default=2.3)
    parser.add_argument("--score-jitter", type=float, default=0.2)
    args = parser.parse_args()
    coverage(
        args.pool,
        args.images,
        args.runs,
        args.resamples,
        args.candidate_noise,
        args.score_jitter,
        report=lambda line: print(line, flush=True),
    )
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
