"""The gate's options, checked where they are built: the CLI and the Python API share them.

``farm gate`` and :meth:`farm.api.Job.gate` build the same :class:`GateOptions` and
:class:`ConfirmOptions`; each refuses a bad value in ``__post_init__`` with an
:class:`OptionError` naming the option as the Python API spells it (``confirm_rounds``), which
the CLI turns into its flag (``--confirm-rounds``). So the two front ends accept the same values
and say the same thing about the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from farm._validate import is_integer, is_number
from farm.errors import UsageError
from farm.release.comparable import DEFAULT_QUALITY_TOLERANCE
from farm.release.significance import DEFAULT_ALPHA, DEFAULT_THRESHOLD, min_rounds

#: Default between-job drift the store's numbers may carry: configurations whose stored slowdown
#: is above ``threshold - DEFAULT_DRIFT`` are re-measured.
DEFAULT_DRIFT = 0.5
#: Default cap on the interleaved rounds of one confirmation.
DEFAULT_MAX_ROUNDS = 60
#: Default cap on how many configurations one gate run re-measures.
DEFAULT_LIMIT = 8
#: CLI flags whose name is not ``--`` + the option with dashes.
FLAGS = {"kpi_tolerances": "--kpi-tolerance"}


class OptionError(UsageError):
    """A gate option out of its range: names the option, the rule and the value."""

    def __init__(self, option: str, expected: str, got: object) -> None:
        self.option, self.expected, self.got = option, expected, got
        super().__init__(f"{option}: expected {expected}, got {got!r}")

    @property
    def flag(self) -> str:
        """The option as the CLI spells it."""
        return FLAGS.get(self.option, "--" + self.option.replace("_", "-"))

    def for_cli(self) -> UsageError:
        """The same error naming the command line's flag."""
        return UsageError(f"{self.flag}: expected {self.expected}, got {self.got!r}")


def _check(option: str, value: object, expected: str, rule: Callable[[float], bool]) -> None:
    """Refuse ``value`` unless it is a number that satisfies ``rule``."""
    if not is_number(value) or not rule(float(value)):  # type: ignore[arg-type]
        raise OptionError(option, expected, value)


@dataclass(frozen=True)
class GateOptions:
    """How the gate judges: the regression test's threshold and level, the tolerances on
    quality and release KPIs, the budget bound's confidence, and which differences between
    the two jobs it refuses."""

    #: A regression is a median slowdown larger than this fraction...
    threshold: float = DEFAULT_THRESHOLD
    #: ...that the one-sided Mann-Whitney U test finds significant at this level.
    alpha: float = DEFAULT_ALPHA
    #: A drop of the primary quality metric larger than this (absolute) is a regression.
    quality_tolerance: float = DEFAULT_QUALITY_TOLERANCE
    #: Overrides the budget file's ``confidence`` when set.
    confidence: float | None = None
    allow_different_env: bool = False
    allow_different_contract: bool = False
    #: Overrides of :data:`farm.gate.kpi.DEFAULT_TOLERANCES` (``--kpi-tolerance NAME=VALUE``).
    kpi_tolerances: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from farm.gate.kpi import DEFAULT_TOLERANCES

        _check("threshold", self.threshold, "a fraction >= 0", lambda x: x >= 0)
        _check("alpha", self.alpha, "a number in (0, 1)", lambda x: 0 < x < 1)
        _check("quality_tolerance", self.quality_tolerance, "a number >= 0", lambda x: x >= 0)
        if self.confidence is not None:
            _check("confidence", self.confidence, "a number in [0.5, 1)", lambda x: 0.5 <= x < 1)
        for name in ("allow_different_env", "allow_different_contract"):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(name, "True or False", getattr(self, name))
        kpis = self.kpi_tolerances
        if not isinstance(kpis, Mapping):
            raise OptionError("kpi_tolerances", "a mapping of KPI name to tolerance", kpis)
        for name, value in kpis.items():
            if name not in DEFAULT_TOLERANCES:
                known = f"KPI names from {sorted(DEFAULT_TOLERANCES)}"
                raise OptionError("kpi_tolerances", known, name)
            _check("kpi_tolerances", value, f"a number >= 0 for {name}", lambda x: x >= 0)


@dataclass(frozen=True)
class ConfirmOptions:
    """How the gate re-measures apparent slowdowns (:mod:`farm.gate.confirm`)."""

    #: Between-job drift the stored numbers may carry: configurations whose stored slowdown is
    #: above ``threshold - drift`` are re-measured.
    drift: float = DEFAULT_DRIFT
    #: At most this many interleaved rounds per configuration (then the median decides).
    confirm_rounds: int = DEFAULT_MAX_ROUNDS
    #: Re-measure at most this many configurations per gate, largest stored slowdown first.
    confirm_limit: int = DEFAULT_LIMIT
    #: Extra folder holding the baseline's artifacts (``farm export --with-artifacts DIR``).
    baseline_artifacts: Path | None = None
    #: Ray cluster to join (None: start a local instance, as ``farm run`` does).
    address: str | None = None

    def __post_init__(self) -> None:
        _check("drift", self.drift, "a fraction >= 0", lambda x: x >= 0)
        if not is_integer(self.confirm_rounds) or self.confirm_rounds < 2:
            raise OptionError("confirm_rounds", "an integer >= 2", self.confirm_rounds)
        if not is_integer(self.confirm_limit) or self.confirm_limit < 1:
            raise OptionError("confirm_limit", "at least 1", self.confirm_limit)
        if self.baseline_artifacts is not None:
            folder = Path(self.baseline_artifacts)
            if not folder.is_dir():
                raise OptionError(
                    "baseline_artifacts",
                    "an existing folder (the DIR of `farm export --with-artifacts DIR`)",
                    str(folder),
                )
            object.__setattr__(self, "baseline_artifacts", folder)

    def check_rounds(self, alpha: float) -> None:
        """Refuse a round cap too small for a confident verdict at ``alpha``."""
        if self.confirm_rounds < min_rounds(alpha):
            raise OptionError(
                "confirm_rounds",
                f"at least {min_rounds(alpha)} (the fewest rounds with a {1 - alpha:.0%} "
                f"interval of the median at alpha {alpha:g})",
                self.confirm_rounds,
            )
