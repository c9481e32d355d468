"""The one path from options to a verdict, shared by ``farm gate`` and :meth:`farm.api.Job.gate`.

Both front ends build the same :class:`~farm.gate.options.GateOptions` and
:class:`~farm.gate.options.ConfirmOptions` and call :func:`gate_snapshots`, which builds the
:class:`~farm.gate.confirm.Confirmer` the same way for both: so a slowdown that re-measures as
noise passes from Python exactly as it passes in CI.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from farm.errors import UsageError
from farm.gate.checks import NOTHING_TO_CHECK, GateResult, run_gate
from farm.gate.confirm import Confirmer, Progress
from farm.gate.options import ConfirmOptions, GateOptions

if TYPE_CHECKING:
    from farm.gate.snapshot import Snapshot
    from farm.release.budget import Budget
    from farm.store.db import Store

#: Python spellings kept from before the ``quality`` rename: alias -> option.
OPTION_ALIASES = {"accuracy_tolerance": "quality_tolerance"}


def options_from(
    confirm: bool | ConfirmOptions, values: dict[str, Any], options: GateOptions | None = None
) -> tuple[GateOptions, ConfirmOptions | None]:
    """The gate's options from keyword arguments named as the fields of both option classes
    (``threshold``, ``confirm_rounds``…; ``accuracy_tolerance`` is the old name of
    ``quality_tolerance``). ``confirm``: re-measure apparent slowdowns (True, or the
    :class:`ConfirmOptions` to use) or not (False); ``options``: built gate options (then no
    gate field may be among ``values``). Bad values raise
    :class:`~farm.gate.options.OptionError` naming the argument."""
    values = {OPTION_ALIASES.get(k, k): v for k, v in values.items()}
    gate_names = {f.name for f in fields(GateOptions)}
    confirm_names = {f.name for f in fields(ConfirmOptions)}
    unknown = sorted(set(values) - gate_names - confirm_names)
    if unknown:
        raise UsageError(
            f"gate: unknown option {unknown[0]!r}; expected one of "
            f"{sorted(gate_names | confirm_names)}"
        )
    given = {k: v for k, v in values.items() if k in gate_names}
    if options is not None and given:
        raise UsageError(f"gate: give {sorted(given)} in the GateOptions, not beside it")
    options = options or GateOptions(**given)
    asked = {k: v for k, v in values.items() if k in confirm_names}
    if isinstance(confirm, ConfirmOptions):
        if asked:
            raise UsageError(f"gate: give {sorted(asked)} in the ConfirmOptions, not beside it")
        confirm_options: ConfirmOptions | None = confirm
    elif confirm is True:
        confirm_options = ConfirmOptions(**asked)
    elif confirm is False:
        confirm_options = None
    else:
        raise UsageError(f"confirm: expected True, False or a ConfirmOptions, got {confirm!r}")
    if confirm_options is not None:
        confirm_options.check_rounds(options.alpha)
    return options, confirm_options


def read_baseline(store: Store, baseline: str | Path | None) -> Snapshot | None:
    """The baseline a caller names: a ``farm export --format json`` file (a Path, or a string
    ending in ``.json`` that is a file), else a job of ``store`` (id, prefix or name)."""
    from farm.gate.snapshot import Snapshot

    if baseline is None:
        return None
    if isinstance(baseline, Path) or (
        isinstance(baseline, str) and baseline.endswith(".json") and Path(baseline).is_file()
    ):
        return Snapshot.from_file(baseline)
    if isinstance(baseline, str):
        return Snapshot.from_store(store, baseline)
    raise UsageError(
        f"baseline: expected a Job, a job id or name, or an export file's path, got "
        f"{type(baseline).__name__}"
    )


def gate_snapshots(
    candidate: Snapshot,
    budget: Budget | None,
    baseline: Snapshot | None,
    options: GateOptions,
    confirm: ConfirmOptions | None,
    store: Store | None = None,
    progress: Progress | None = None,
) -> GateResult:
    """Budget and regression checks of ``candidate``; with ``confirm`` and a baseline, latency
    regressions are re-measured on the cluster first (recorded in ``store``). Ray is shut down
    afterwards if the confirmation started it."""
    if budget is None and baseline is None:
        raise UsageError(NOTHING_TO_CHECK)
    confirmer = None
    if baseline is not None and confirm is not None:
        confirm.check_rounds(options.alpha)
        confirmer = Confirmer(candidate, baseline, confirm, store, progress)
    try:
        return run_gate(candidate, budget, baseline, options, confirmer)
    finally:
        if confirmer is not None:
            confirmer.close()
