"""CI: ``farm gate`` checks a candidate job against budgets and a baseline job, and confirms
apparent slowdowns by re-measuring both artifacts before it fails a build.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from farm._lazy import lazy_exports

if TYPE_CHECKING:
    from farm.gate.checks import GateResult, run_gate
    from farm.gate.options import ConfirmOptions, GateOptions
    from farm.gate.snapshot import Snapshot

#: Public name -> the module that defines it (imported on first use).
_EXPORTS = {
    "ConfirmOptions": "farm.gate.options",
    "GateOptions": "farm.gate.options",
    "GateResult": "farm.gate.checks",
    "Snapshot": "farm.gate.snapshot",
    "run_gate": "farm.gate.checks",
}
__all__ = ["ConfirmOptions", "GateOptions", "GateResult", "Snapshot", "run_gate"]
__getattr__, __dir__ = lazy_exports("farm.gate", _EXPORTS)
