"""Calibration hygiene: calibration images must not be eval images, and the card says where the
calibration set came from.

A model quantized with statistics of the very images it is then judged on looks better than it
is. So a job whose ``[workload.data] calib`` folder holds a file whose content is also an eval
image (the same bytes, under any name) is refused when the workload is loaded, before anything
runs, naming the job file, the field and the first duplicates, unless the job says
``[workload.data] allow_calib_overlap = true``. Files are compared by size first and hashed only
when an eval file has the same size, so the check reads almost nothing when there is no overlap.

:func:`calibration_origin` checks, and says how the calibration set is chosen ("folder
data/calib", "carved from the eval images…", "synthetic inputs"); the engine adds its size and the
store keeps the words for the model card. Standard library only: validating a job file stays cheap.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from farm._validate import Fields
from workloads.datasets.common import IMAGE_SUFFIXES
from workloads.datasets.config import DataConfig

#: The field that accepts an overlap.
ALLOW_FIELD = "allow_calib_overlap"
#: Duplicates an error names (then how many more there are).
SHOWN = 5


def image_files(folder: Path) -> list[Path]:
    """Every image file under ``folder`` (class sub-folders included), sorted: those the
    loaders read."""
    return sorted(
        p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def duplicates(calib: Path, eval_dir: Path) -> list[tuple[str, str]]:
    """(calibration file, eval file) for every calibration image whose bytes equal an eval
    image's, in calibration order; paths relative to their folders."""
    by_size: dict[int, list[Path]] = defaultdict(list)
    for path in image_files(eval_dir):
        by_size[path.stat().st_size].append(path)
    eval_digests: dict[str, Path] = {}
    hashed: set[int] = set()
    found = []
    for path in image_files(calib):
        size = path.stat().st_size
        if size not in by_size:
            continue
        if size not in hashed:  # hash each size bucket of the eval files once, when needed
            hashed.add(size)
            for other in by_size[size]:
                eval_digests.setdefault(_digest(other), other)
        twin = eval_digests.get(_digest(path))
        if twin is not None:
            found.append(
                (path.relative_to(calib).as_posix(), twin.relative_to(eval_dir).as_posix())
            )
    return found


def check_overlap(data: Fields, calib: Path, eval_dir: Path) -> list[tuple[str, str]]:
    """The duplicates of ``calib`` in ``eval_dir``; raises the job's error naming the field
    ``workload.data.calib`` and the first of them unless ``allow_calib_overlap = true``."""
    allowed = data.flag(ALLOW_FIELD, False)
    found = duplicates(calib, eval_dir)
    if found and not allowed:
        shown = ", ".join(f"{c} = eval {e}" for c, e in found[:SHOWN])
        more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        raise data.error(
            "calib",
            f"calibration images that are not eval images (set `{ALLOW_FIELD} = true` in "
            "[workload.data] to calibrate on them anyway)",
            f"{len(found)} image(s) of {calib} with the same content as eval images of "
            f"{eval_dir}: {shown}{more}",
        )
    return found


@dataclass(frozen=True)
class CalibrationOrigin:
    """How a job's calibration set is chosen (``how``), and what the overlap check found."""

    how: str
    #: Calibration images that are eval images too, accepted by ``allow_calib_overlap``.
    overlap: int = 0

    def describe(self, size: int) -> str:
        """The card's words: ``folder data/calib (64 images)``."""
        text = f"{self.how} ({size} images)"
        if self.overlap:
            text += f"; {self.overlap} of them are eval images too (`{ALLOW_FIELD} = true`)"
        return text


def calibration_origin(workload: Fields, base_dir: Path) -> CalibrationOrigin:
    """How the calibration set of the job's ``[workload]`` table is chosen; refuses calibration
    images that repeat eval images (:func:`check_overlap`). Called once the table is validated
    (its folders exist, its numbers are in range)."""
    if "name" in workload:
        return CalibrationOrigin(f"held-out split of the embedded {workload.table['name']} data")
    data = workload.table_of("data")
    data.flag(ALLOW_FIELD, False)  # a wrong type is an error even where nothing is compared
    eval_dir = data.path("eval", base_dir, None, kind="dir")
    if eval_dir is None:
        return CalibrationOrigin("synthetic inputs, seeded (the job gives no images)")
    calib = data.path("calib", base_dir, None, kind="dir")
    if calib is None:
        fraction = data.table.get("calib_fraction", DataConfig.calib_fraction)
        seed, where = data.table.get("seed", DataConfig.seed), data.table["eval"]
        return CalibrationOrigin(
            f"carved from the eval images of {where} ({fraction:.0%}, seed {seed})"
        )
    found = check_overlap(data, calib, eval_dir)
    return CalibrationOrigin(f"folder {data.table['calib']}", len(found))
