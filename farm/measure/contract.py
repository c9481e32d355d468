"""The measurement contract: how a number was obtained, stored beside the number.

A :class:`Contract` is plain data (standard library only) so that job files can carry one per job
and the store can refuse to compare measurements taken under different contracts.
See docs/measurement.md for the methodology these fields drive.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from farm.errors import UsageError

SCENARIOS = ("single-stream", "offline", "server")

#: Percentile definitions a contract may name (numpy ``method=`` names). ``inverted_cdf`` is the
#: nearest-rank definition: the p-th percentile is a sample that was really observed, the smallest
#: one with at least p % of the samples at or below it (the definition MLPerf LoadGen uses).
#: ``linear`` (numpy's default, interpolating) is accepted only to reproduce other tools' numbers.
PERCENTILE_METHODS = ("inverted_cdf", "linear")
#: What a GPU measurement times (``Contract.io``): ``host`` = numpy in, numpy out, the copies
#: between host and device included; ``device`` = the input already in device memory and the
#: output left there (a serving stack that preprocesses on the GPU).
IO_MODES = ("host", "device")
#: Fields that only some measurements have; left out of ``to_dict()`` when None.
OPTIONAL = frozenset({"measure_postprocess", "io", "exclusive_node"})


@dataclass(frozen=True)
class Contract:
    """The rules of one measurement. Defaults fit a trial of a job: a few seconds at most.

    Phases: a warm-up (until both ``warmup_s`` and ``warmup_iters`` are reached, first call
    timed as the cold latency), then sampling in windows. Each window lasts at least
    ``min_duration_s / window_count`` seconds and holds at least ``ceil(min_samples /
    window_count)`` samples, so the last ``window_count`` windows together meet both minimums.
    The run stops as soon as the medians (offline: throughputs) of the last ``window_count``
    windows all lie within ``±stability_tolerance`` of their mean; the reported numbers are those
    windows' samples. If ``max_duration_s`` of sampling passes first, the result is stored with
    ``stable=False`` and the reason.
    """

    scenario: str = "single-stream"
    warmup_s: float = 0.2
    warmup_iters: int = 10
    min_duration_s: float = 1.0
    min_samples: int = 64
    max_duration_s: float = 3.0
    window_count: int = 3
    stability_tolerance: float = 0.10
    percentile_method: str = "inverted_cdf"
    #: Server scenario only: mean arrival rate of queries (batches) per second.
    qps: float | None = None
    #: Server scenario only: seed of the Poisson arrival schedule (same seed, same schedule).
    seed: int = 0
    #: Detection / segmentation: whether a sample covers the model's post-processing too (box
    #: decode, NMS, argmax: what users ship) or the model alone. None for tasks without any
    #: (classification); such optional fields are left out of the stored contract when None.
    measure_postprocess: bool | None = None
    #: GPU targets: what a sample times, one of :data:`IO_MODES` (a job's default: ``host``).
    #: None for CPU targets, whose inputs and outputs live in host memory either way.
    io: str | None = None
    #: GPU targets: True when the measurement had its whole node (every other GPU idle); False
    #: when other measurements ran at the same time on the node's other GPUs, one per GPU.
    #: None for CPU targets, which always have their node to themselves.
    exclusive_node: bool | None = None

    def __post_init__(self) -> None:
        _check_choice("scenario", self.scenario, SCENARIOS)
        _check_choice("percentile_method", self.percentile_method, PERCENTILE_METHODS)
        for name in ("warmup_s", "min_duration_s"):
            _check_number(name, getattr(self, name), minimum=0.0)
        _check_number("max_duration_s", self.max_duration_s, minimum=0.0, strict=True)
        _check_number("stability_tolerance", self.stability_tolerance, minimum=0.0, strict=True)
        _check_int("warmup_iters", self.warmup_iters, minimum=0)
        _check_int("min_samples", self.min_samples, minimum=1)
        _check_int("window_count", self.window_count, minimum=1)
        _check_int("seed", self.seed, minimum=0)
        for name in ("measure_postprocess", "exclusive_node"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise UsageError(
                    f"measurement contract: field `{name}`: expected true or false, got {value!r}"
                )
        if self.io is not None:
            _check_choice("io", self.io, IO_MODES)
        if self.max_duration_s < self.min_duration_s:
            raise UsageError(
                "measurement contract: `max_duration_s >= min_duration_s` must hold, but got "
                f"max_duration_s={self.max_duration_s!r}, min_duration_s={self.min_duration_s!r}"
            )
        if self.scenario == "server":
            if self.qps is None:
                raise UsageError(
                    "measurement contract: field `qps`: the server scenario needs an arrival "
                    "rate (queries per second), got none"
                )
            _check_number("qps", self.qps, minimum=0.0, strict=True)
        elif self.qps is not None:
            raise UsageError(
                f"measurement contract: field `qps`: only the server scenario takes an arrival "
                f"rate, but scenario={self.scenario!r} got qps={self.qps!r}"
            )

    @property
    def window_min_samples(self) -> int:
        return math.ceil(self.min_samples / self.window_count)

    @property
    def window_min_s(self) -> float:
        return self.min_duration_s / self.window_count

    def to_dict(self) -> dict[str, Any]:
        """The contract as stored; optional fields that do not apply (None) are left out, so
        contracts stored before they existed still compare equal."""
        return {k: v for k, v in asdict(self).items() if k not in OPTIONAL or v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Contract:
        """Build a contract from a dict (a job file's table or a stored row); unknown keys fail."""
        if not isinstance(data, dict):
            raise UsageError(f"measurement contract: expected a table, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(
                f"measurement contract: unknown field(s) {unknown}; known: {sorted(known)}"
            )
        return cls(**data)


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UsageError(
            f"measurement contract: field `{name}`: expected one of {list(choices)}, got {value!r}"
        )


def _check_number(name: str, value: object, *, minimum: float, strict: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > minimum if strict else value >= minimum  # type: ignore[operator]
    if not ok:
        rule = ">" if strict else ">="
        raise UsageError(
            f"measurement contract: field `{name}`: expected a finite number {rule} {minimum}, "
            f"got {value!r}"
        )


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(
            f"measurement contract: field `{name}`: expected an integer >= {minimum}, got {value!r}"
        )
