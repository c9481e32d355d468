"""The ``[workload.data]`` table: where a user's images and ground truth are, and how images are
preprocessed (imports the standard library only at import time).

Which ground truth the data must hold depends on the task: each task names the kinds it reads
(``Task.truth``: ``annotations``, a COCO instances JSON beside the images; ``masks``, a folder of
class-index PNGs), and the fields ``eval_<kind>`` / ``train_<kind>`` are then accepted and
required with ``eval`` / ``train``. Every error is a :class:`~farm.errors.SpecError` naming the
job file and the field (``workload.data.eval``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm._validate import Fields
from farm.errors import SpecError

if TYPE_CHECKING:
    from workloads.tasks.base import Task

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Kinds of ground truth a task may read (``Task.truth``) that come in a file or folder of their
#: own, named by ``eval_<kind>`` / ``train_<kind>``: kind -> (file or folder, what it is). The
#: ``classes`` kind (one sub-folder of ``eval`` per class) needs no field.
TRUTH_KINDS = {
    "annotations": ("file", "a COCO instances JSON"),
    "masks": ("dir", "a folder of mask PNGs"),
    "labels": (
        "path",
        "a PaddleOCR label file, or a folder of ICDAR 2015 gt_<image>.txt files",
    ),
}
#: Ground-truth fields: ``eval_<kind>`` and ``train_<kind>`` of every kind.
TRUTH_FIELDS = tuple(f"{split}_{kind}" for kind in TRUTH_KINDS for split in ("eval", "train"))


@dataclass(frozen=True)
class DataConfig:
    """Where a user workload's images are and how they are preprocessed.

    With no ``eval`` directory the workload uses seeded synthetic inputs (``synthetic_samples``
    of shape 3×``crop``×``crop``) and has no labels: quality is fidelity to the fp32 reference.
    Without ``calib`` the calibration split is carved from the eval directory (``calib_fraction``,
    disjoint from what stays for eval); without ``train`` pruning is not offered.
    """

    eval: Path | None = None
    calib: Path | None = None
    train: Path | None = None
    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    calib_fraction: float = 0.2
    synthetic_samples: int = 64
    seed: int = 0
    #: COCO instances JSON of the eval / train images (detection).
    eval_annotations: Path | None = None
    train_annotations: Path | None = None
    #: Folders of class-index mask PNGs, one per image with the same stem (segmentation).
    eval_masks: Path | None = None
    train_masks: Path | None = None
    #: OCR ground truth of the eval / train images: a PaddleOCR label file (``path<TAB>text``,
    #: ``path<TAB>[{"transcription", "points"}]``) or a folder of ICDAR 2015 ``gt_*.txt`` files.
    eval_labels: Path | None = None
    train_labels: Path | None = None
    #: A CSV of ``file,slice`` rows naming slices of the eval images (release KPIs).
    slices: Path | None = None
    #: True when ``resize`` or ``crop`` was written in the job (a declared input size).
    crop_given: bool = False
    #: The job file, named by every error about this data (not part of the data's identity).
    source: str = "<memory>"

    @property
    def synthetic(self) -> bool:
        return self.eval is None

    def error(self, key: str, expected: str, got: object = None) -> SpecError:
        """The error about field ``workload.data.<key>`` of the job file."""
        return SpecError(self.source, f"workload.data.{key}", expected, got)

    def to_json(self) -> dict[str, Any]:
        """The fields that define the data (hashed into the workload's recipe: keep stable)."""
        extra = (*TRUTH_FIELDS, "slices")
        truth = {k: str(getattr(self, k)) for k in extra if getattr(self, k) is not None}
        return truth | {
            "eval": str(self.eval) if self.eval else None,
            "calib": str(self.calib) if self.calib else None,
            "train": str(self.train) if self.train else None,
            "resize": self.resize,
            "crop": self.crop,
            "mean": list(self.mean),
            "std": list(self.std),
            "calib_fraction": self.calib_fraction,
            "synthetic_samples": self.synthetic_samples,
            "seed": self.seed,
        }


#: The fields a job may write in ``[workload.data]``.
#: (``allow_calib_overlap`` is read by ``workloads.calib_overlap``: not the data's identity.)
FIELDS = frozenset(DataConfig.__dataclass_fields__) - {"crop_given", "source"} | {
    "allow_calib_overlap"
}


def parse_data_config(
    section: Mapping[str, Any] | None,
    base_dir: Path,
    task_name: str,
    *,
    source: str | Path = "<memory>",
) -> DataConfig:
    """Validate ``[workload.data]`` (None = synthetic inputs). Paths resolve against
    ``base_dir``; ``source`` is the job file errors name.

    The task (``task_name``) sets what the data must hold (its ``truth`` kinds) and the default
    normalisation (its ``normalization``; ImageNet's when it has none)."""
    from workloads.tasks import TASKS

    task = TASKS[task_name]
    defaults: dict[str, Any] = {"source": str(source)}
    if task.normalization is not None:
        defaults.update(mean=task.normalization[0], std=task.normalization[1])
    if section is None:
        return DataConfig(**defaults)
    f = Fields(section, source, "workload.data")
    f.only(FIELDS)
    values = dict(defaults)
    for key in ("eval", "calib", "train"):
        values[key] = _resolved(f.path(key, base_dir, None, kind="dir"))
    values.update(_truth(f, base_dir, task))
    values["slices"] = _resolved(f.path("slices", base_dir, None, kind="file"))
    values["crop_given"] = "crop" in f or "resize" in f
    if values["eval"] is None and (values["calib"] or values["train"]):
        raise f.error("eval", "a directory: required when `calib` or `train` is given")
    for key in ("resize", "crop", "synthetic_samples"):
        values[key] = f.positive_int(key, getattr(DataConfig, key))
    values["seed"] = f.integer("seed", 0, low=0, expected="an integer >= 0")
    for key in ("mean", "std"):
        if key in f:
            low = 1e-12 if key == "std" else None
            what = "3 numbers (one per channel)" + (", all > 0" if low else "")
            values[key] = f.numbers(key, length=3, low=low, expected=what)
    values["calib_fraction"] = f.fraction("calib_fraction", 0.2, low_open=True)
    cfg = DataConfig(**values)
    for split in ("eval", "train"):
        for kind in (k for k in task.truth if k in TRUTH_KINDS):
            needed = f"{split}_{kind}"
            if getattr(cfg, split) is not None and getattr(cfg, needed) is None:
                what = TRUTH_KINDS[kind][1]
                raise f.error(needed, f"{what}: required with `{split}` for task {task.name!r}")
            if getattr(cfg, split) is None and getattr(cfg, needed) is not None:
                raise f.error(split, f"a directory of images: required with `{needed}`")
    if cfg.crop > cfg.resize:
        raise f.error("crop", f"at most `resize` ({cfg.resize})", cfg.crop)
    return cfg


def _truth(f: Fields, base_dir: Path, task: type[Task]) -> dict[str, Path | None]:
    """The ground-truth fields of ``task``'s kinds; a field of another kind is refused."""
    from workloads.tasks import TASKS

    out: dict[str, Path | None] = {}
    for kind, (file_or_dir, _) in TRUTH_KINDS.items():
        for split in ("eval", "train"):
            key = f"{split}_{kind}"
            if key in f and kind not in task.truth:
                owners = [name for name, cls in TASKS.items() if kind in cls.truth]
                raise f.error(
                    key,
                    f'only with `task = "{owners[0]}"` (this workload\'s task is {task.name!r})',
                    f.table[key],
                )
            path = f.path(key, base_dir, None, kind=None if file_or_dir == "path" else file_or_dir)
            if path is not None and not path.exists():
                raise f.error(key, "an existing file or directory", str(path))
            out[key] = _resolved(path)
    return out


def _resolved(path: Path | None) -> Path | None:
    return None if path is None else path.resolve()
