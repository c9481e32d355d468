"""The read side: budgets, what would ship (``recommend``), a job name's history and the
release card. Reads only the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from farm._lazy import lazy_exports

if TYPE_CHECKING:
    from farm.release.budget import Budget, load_budget
    from farm.release.card import build_card
    from farm.release.history import History, release_history
    from farm.release.recommend import Recommendation

#: Public name -> the module that defines it (imported on first use).
_EXPORTS = {
    "Budget": "farm.release.budget",
    "History": "farm.release.history",
    "Recommendation": "farm.release.recommend",
    "build_card": "farm.release.card",
    "load_budget": "farm.release.budget",
    "release_history": "farm.release.history",
}
__all__ = ["Budget", "History", "Recommendation", "build_card", "load_budget", "release_history"]
__getattr__, __dir__ = lazy_exports("farm.release", _EXPORTS)
