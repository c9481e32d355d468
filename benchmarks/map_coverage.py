"""How often does a 95 % paired interval of a COCO mAP change cover the true change?

A pool of ``--pool`` images is drawn once from a generator of two detectors (the candidate's
boxes noisier and its scores shuffled a little, as a quantized model's); the true change is the
mAP difference on the whole pool (the population value, not one run's). Each run draws
``--images`` distinct images from the pool (seeded by the run), resamples them ``--resamples``
times (the farm's seeded paired bootstrap) and forms three 95 % intervals from the same
resamples: the farm's bias-corrected percentile (BC, what ``compare`` records), the plain
percentile and the basic interval. Prints, every 100 runs and at the end, each one's coverage
(the issue's band: 93-97 %), the estimate's bias against the truth, the bootstrap's own
estimate of that bias, and the spread of the estimate and of the resamples.

    .venv/bin/python benchmarks/map_coverage.py --pool 30000 --images 1000 --runs 1000
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from farm.evidence.stats import bias_corrected_interval, bootstrap_weights, percentile_interval
from workloads.tasks._coco_boot import match, resampled_map

Arrays = dict[str, np.ndarray]


def population(n: int, seed: int) -> tuple[Arrays, Arrays]:
    """COCO matchings of two detectors on ``n`` generated images (1-4 boxes of 3 categories,
    0-2 false positives each): the candidate's boxes are noisier and its scores jittered."""
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
        noise = rng.normal(0, 1, boxes.shape)
        for out, sd, jitter in ((base, 2.0, 0.0), (cand, 3.0, 0.15)):
            found = np.concatenate([boxes + noise * sd, fp])
            s = np.clip(score + rng.normal(0, jitter, len(score)), 0, 1)
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


def one_run(base: Arrays, cand: Arrays, rows: np.ndarray, resamples: int, seed: int) -> Any:
    """The estimate, the resampled changes and the three intervals of one run."""
    b, c = subset(base, rows), subset(cand, rows)
    whole = np.ones((1, len(rows)))
    est = float(resampled_map(c, whole)[0] - resampled_map(b, whole)[0])
    w = np.concatenate(list(bootstrap_weights(len(rows), resamples, seed)))
    d = resampled_map(c, w) - resampled_map(b, w)
    lo, hi = percentile_interval(d, 0.95)
    intervals = {
        "bc": bias_corrected_interval(d, est, 0.95),
        "percentile": (lo, hi),
        "basic": (2 * est - hi, 2 * est - lo),
    }
    return est, d, intervals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=30000)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=500)
    args = parser.parse_args()
    start = time.perf_counter()
    base, cand = population(args.pool, seed=0)
    everyone = np.ones((1, args.pool))
    truth = float(resampled_map(cand, everyone)[0] - resampled_map(base, everyone)[0])
    print(f"pool {args.pool} images, true change {truth:+.5f}; {args.images} images per run")
    covered = {"bc": 0, "percentile": 0, "basic": 0}
    est, boot_bias, boot_sd = [], [], []
    for run in range(args.runs):
        rng = np.random.default_rng(run)
        rows = np.sort(rng.choice(args.pool, args.images, replace=False))
        e, d, intervals = one_run(base, cand, rows, args.resamples, run)
        est.append(e)
        boot_bias.append(d.mean() - e)
        boot_sd.append(d.std())
        for name, (lo, hi) in intervals.items():
            covered[name] += lo <= truth <= hi
        if (run + 1) % 100 == 0 or run + 1 == args.runs:
            shares = "  ".join(f"{k} {v / (run + 1):6.1%}" for k, v in covered.items())
            print(
                f"{run + 1:5d} runs  coverage: {shares}  bias {np.mean(est) - truth:+.5f}  "
                f"bootstrap's bias {np.mean(boot_bias):+.5f}  sd {np.std(est):.5f}  "
                f"bootstrap sd {np.mean(boot_sd):.5f}  ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
