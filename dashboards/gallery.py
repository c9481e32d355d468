"""The error gallery: the eval images a candidate broke and fixed against its target's fp32
baseline, worst first, each drawn twice side by side (fp32's prediction, the candidate's) by
the task's drawing hook (:meth:`workloads.evidence.PerImage.draw`).

Read side only: the images come from the job's own workload (its eval split, loaded as the job
loaded it), the predictions from the per-image evidence in the store. The report embeds the
tiles as PNG thumbnails (the page stays one file that opens offline); ``farm gallery`` writes
them to a folder.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from farm.store.db import Store

#: Images per kind (broken, fixed) and candidate, worst first.
LIMIT = 8

#: A tile's kind as the heading's verb ("images it broke").
VERBS = {"broken": "broke", "fixed": "fixed"}


@dataclass(frozen=True)
class Tile:
    """One changed image: fp32's prediction beside the candidate's, as a PNG."""

    target: str
    trial_number: int
    image_id: str
    kind: str  # broken | fixed
    #: The image's own score, fp32's and the candidate's.
    before: float
    after: float
    png: bytes

    @property
    def file_name(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.image_id).strip("_")
        return f"{self.target}-trial{self.trial_number}-{self.kind}-{safe}.png"

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def gallery(
    store: Store, job_id: str, picks: list[tuple[str, int]], limit: int = LIMIT
) -> tuple[list[Tile], list[str]]:
    """Tiles of each (target, trial) of ``picks`` against its baseline, and notes on what
    could not be drawn (no evidence, a workload that no longer loads, other images)."""
    compared = store.comparisons(job_id)
    wanted = [p for p in picks if p in compared]
    notes = [
        f"{t} #{n}: no per-image comparison stored" for t, n in picks if (t, n) not in compared
    ]
    if not wanted:
        return [], notes
    try:
        task, pixels, ids = _images(store, job_id)
    except Exception as exc:  # the data moved, a model cannot be rebuilt: say so, draw nothing
        return [], [*notes, f"the eval images could not be loaded: {type(exc).__name__}: {exc}"]
    tiles = []
    for target, number in wanted:
        (base_job, base_target, base_number), c = compared[(target, number)]
        base = store.evidence(base_job, base_target, base_number)
        cand = store.evidence(job_id, target, number)
        if base is None or cand is None or cand.ids != ids:
            notes.append(f"{target} #{number}: its evidence is not of this workload's images")
            continue
        tiles += changed(task, pixels, base, cand, c.flip_threshold, (target, number), limit)
    return tiles, notes


def changed(
    task: Any,
    pixels: Any,
    base: Any,
    cand: Any,
    threshold: float,
    where: tuple[str, int] = ("", 0),
    limit: int = LIMIT,
) -> list[Tile]:
    """The tiles of the images ``cand`` broke and fixed against ``base`` (evidence of the same
    images), worst first; ``pixels(i)`` gives image ``i``'s pixels, ``task.draw`` draws."""
    from farm.evidence.paired import flipped

    broken, fixed = flipped(base, cand, threshold)
    tiles = []
    for kind, rows in (("broken", broken[:limit]), ("fixed", fixed[:limit])):
        for i in rows.tolist():
            png = _pair(task.draw(pixels(i), base, i), task.draw(pixels(i), cand, i))
            before, after = float(base.score[i]), float(cand.score[i])
            tiles.append(Tile(*where, base.ids[i], kind, before, after, png))
    return tiles


def _images(store: Store, job_id: str) -> tuple[Any, Any, tuple[str, ...]]:
    """The job's task, a function from an eval image's row to its pixels, and the images' ids."""
    from workloads import load_workload
    from workloads.drawing import to_pixels

    spec = store.resolve_job(job_id).job_spec()
    workload = load_workload(
        spec.workload, Path(spec.base_dir), store.path.parent, source=spec.source
    )
    data = workload.data()
    mean, std = data.normalization or ((0.0,) * 3, (1.0,) * 3)

    def pixels(i: int) -> np.ndarray:
        return to_pixels(data.eval.x[i], mean, std, data.layout)

    return workload.task, pixels, data.eval.image_ids()


def _pair(left: np.ndarray, right: np.ndarray) -> bytes:
    """fp32's drawing and the candidate's side by side, headed, as PNG bytes."""
    from PIL import Image, ImageDraw

    h = max(left.shape[0], right.shape[0])
    canvas = Image.new("RGB", (left.shape[1] + right.shape[1] + 6, h + 16), (255, 255, 255))
    canvas.paste(Image.fromarray(left), (0, 16))
    canvas.paste(Image.fromarray(right), (left.shape[1] + 6, 16))
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 2), "fp32", fill=(0, 0, 0))
    draw.text((left.shape[1] + 8, 2), "candidate", fill=(0, 0, 0))
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=True)
    return out.getvalue()


def write(tiles: list[Tile], folder: str | Path) -> list[Path]:
    """The tiles as PNG files in ``folder`` (``farm gallery -o``)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for tile in tiles:
        path = out / tile.file_name
        path.write_bytes(tile.png)
        paths.append(path)
    return paths


def html_section(tiles: list[Tile], notes: list[str], limit: int = LIMIT) -> str:
    """The report's gallery: per candidate, the images it broke and fixed (thumbnails inline)."""
    import html

    if not tiles and not notes:
        return "<p class='muted'>No image changed beyond the task's flip threshold.</p>"
    parts = [
        f"<p class='muted'>Up to {limit} images per kind and candidate, the largest change "
        "first: fp32's prediction on the left, the candidate's on the right.</p>"
    ]
    groups: dict[tuple[str, int, str], list[Tile]] = {}
    for t in tiles:
        groups.setdefault((t.target, t.trial_number, t.kind), []).append(t)
    for (target, number, kind), group in groups.items():
        parts.append(
            f"<h4>{html.escape(target)} #{number}: images it {VERBS.get(kind, kind)}</h4>"
            "<div class='gallery'>"
        )
        for t in group:
            parts.append(
                f"<figure><img src='{t.data_uri()}' alt='{html.escape(t.image_id)}'>"
                f"<figcaption>{html.escape(t.image_id)}: {t.before:.2f} → {t.after:.2f}"
                "</figcaption></figure>"
            )
        parts.append("</div>")
    parts += [f"<p class='muted'>{html.escape(n)}</p>" for n in notes]
    return "".join(parts)


def shipped(store: Store, job_id: str) -> list[tuple[str, int]]:
    """Each target's pick by the recommend rule among the feasible trials (what the card
    ships without a budget)."""
    from farm.release.budget import Budget, Limits
    from farm.release.recommend import recommend

    trials = store.trials(job_id)
    targets = sorted({t.target for t in trials})
    rec = recommend(job_id, trials, Budget("(no budget)", Limits(), {t: Limits() for t in targets}))
    return [
        (c.pick.trial.target, c.pick.trial.trial_number)
        for c in rec.per_target.values()
        if c.pick is not None
    ]
