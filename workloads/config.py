"""The ``[workload.data]`` table: ImageFolder directories and their preprocessing (stdlib only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.errors import UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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

    @property
    def synthetic(self) -> bool:
        return self.eval is None

    def to_json(self) -> dict[str, Any]:
        return {
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


def parse_data_config(section: Any, base_dir: Path) -> DataConfig:
    """Validate ``[workload.data]`` (None = synthetic inputs). Paths resolve against base_dir."""
    if section is None:
        return DataConfig()
    if not isinstance(section, dict):
        raise UsageError(f"`workload.data`: expected a table, got {section!r}")
    known = set(DataConfig.__dataclass_fields__)
    unknown = sorted(set(section) - known)
    if unknown:
        raise UsageError(
            f"`workload.data.{unknown[0]}`: unknown field; "
            f"allowed fields: {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {}
    for key in ("eval", "calib", "train"):
        if key in section:
            values[key] = _directory(section[key], key, base_dir)
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
