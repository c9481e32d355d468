"""The ``[workload.data]`` table: ImageFolder directories and their preprocessing (stdlib only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.errors import UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Detectors take pixels scaled to [0, 1] (torchvision detectors normalise inside the model,
#: Ultralytics models expect [0, 1]): the default normalisation of the detection task.
UNIT_MEAN = (0.0, 0.0, 0.0)
UNIT_STD = (1.0, 1.0, 1.0)
#: Ground-truth fields of the dense tasks: field -> (task, file or folder).
TRUTH_FIELDS = {
    "eval_annotations": ("detection", "file"),
    "train_annotations": ("detection", "file"),
    "eval_masks": ("segmentation", "folder"),
    "train_masks": ("segmentation", "folder"),
}


@dataclass(frozen=True)
class DataConfig:
    """Where a user workload's images are and how they are preprocessed.

    With no ``eval`` directory the workload uses seeded synthetic inputs (``synthetic_samples``
    of shape 3×``crop``×``crop``) and has no labels: quality is fidelity to the fp32 reference.
    Without ``calib`` the calibration split is carved from the eval directory (``calib_fraction``,
    stratified, disjoint from what stays for eval); without ``train`` pruning is not offered.
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
    #: A CSV of ``file,slice`` rows naming slices of the eval images (release KPIs).
    slices: Path | None = None
    #: True when ``resize`` or ``crop`` was written in the job (a declared input size).
    crop_given: bool = False

    @property
    def synthetic(self) -> bool:
        return self.eval is None

    def to_json(self) -> dict[str, Any]:
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


def parse_data_config(section: Any, base_dir: Path, task: str = "classification") -> DataConfig:
    """Validate ``[workload.data]`` (None = synthetic inputs). Paths resolve against base_dir.

    ``task`` sets what the data must hold: ImageFolder classes (classification), a COCO file
    beside the eval images (detection), mask folders (segmentation); and the default
    normalisation (detection: none, pixels in [0, 1])."""
    defaults: dict[str, Any] = {}
    if task == "detection":
        defaults = {"mean": UNIT_MEAN, "std": UNIT_STD}
    if section is None:
        return DataConfig(**defaults)
    if not isinstance(section, dict):
        raise UsageError(f"`workload.data`: expected a table, got {section!r}")
    known = set(DataConfig.__dataclass_fields__) - {"crop_given"}
    unknown = sorted(set(section) - known)
    if unknown:
        raise UsageError(
            f"`workload.data.{unknown[0]}`: unknown field; "
            f"allowed fields: {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = dict(defaults)
    for key in ("eval", "calib", "train"):
        if key in section:
            values[key] = _directory(section[key], key, base_dir)
    for key, (owner, kind) in TRUTH_FIELDS.items():
        if key not in section:
            continue
        if owner != task:
            raise UsageError(
                f'`workload.data.{key}`: only for `task = "{owner}"` (this workload\'s task '
                f"is {task!r})"
            )
        reader = _file if kind == "file" else _directory
        values[key] = reader(section[key], key, base_dir)
    if "slices" in section:
        values["slices"] = _file(section["slices"], "slices", base_dir)
    values["crop_given"] = "crop" in section or "resize" in section
    if values.get("eval") is None and (values.get("calib") or values.get("train")):
        raise UsageError("`workload.data.eval`: required when `calib` or `train` is given")
    for key in ("resize", "crop", "synthetic_samples", "seed"):
        if key in section:
            values[key] = _positive_int(section[key], key, allow_zero=key == "seed")
    for key in ("mean", "std"):
        if key in section:
            values[key] = _triple(section[key], key)
    if "calib_fraction" in section:
        frac = section["calib_fraction"]
        if not isinstance(frac, int | float) or isinstance(frac, bool) or not 0 < frac < 1:
            raise UsageError(f"`workload.data.calib_fraction`: expected 0 < x < 1, got {frac!r}")
        values["calib_fraction"] = float(frac)
    cfg = DataConfig(**values)
    for split in ("eval", "train"):
        needed = {"detection": f"{split}_annotations", "segmentation": f"{split}_masks"}.get(task)
        if needed and getattr(cfg, split) is not None and getattr(cfg, needed) is None:
            what = "a COCO instances JSON" if task == "detection" else "a folder of mask PNGs"
            raise UsageError(
                f"`workload.data.{needed}`: required with `{split}` for task {task!r} ({what})"
            )
    if cfg.crop > cfg.resize:
        raise UsageError(
            f"`workload.data.crop`: must be <= `resize` ({cfg.resize}), got {cfg.crop}"
        )
    return cfg


def _directory(value: Any, key: str, base_dir: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise UsageError(f"`workload.data.{key}`: expected a directory path, got {value!r}")
    path = (Path(base_dir) / value).resolve()
    if not path.is_dir():
        raise UsageError(f"`workload.data.{key}`: directory not found: {path}")
    return path


def _file(value: Any, key: str, base_dir: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise UsageError(f"`workload.data.{key}`: expected a file path, got {value!r}")
    path = (Path(base_dir) / value).resolve()
    if not path.is_file():
        raise UsageError(f"`workload.data.{key}`: file not found: {path}")
    return path


def _positive_int(value: Any, key: str, *, allow_zero: bool = False) -> int:
    ok = (
        isinstance(value, int) and not isinstance(value, bool) and value >= (0 if allow_zero else 1)
    )
    if not ok:
        kind = "an integer >= 0" if allow_zero else "a positive integer"
        raise UsageError(f"`workload.data.{key}`: expected {kind}, got {value!r}")
    return value


def _triple(value: Any, key: str) -> tuple[float, float, float]:
    ok = (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )
    if not ok or (key == "std" and min(value) <= 0):
        raise UsageError(
            f"`workload.data.{key}`: expected 3 numbers (one per channel), got {value!r}"
        )
    return (float(value[0]), float(value[1]), float(value[2]))
