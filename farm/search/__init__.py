"""What to try next: each target's search space, the screening design, the sampler, the
objectives, and the candidates (workload + transform chain + target + runtime options,
content-hashed) the studies propose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from farm._lazy import lazy_exports

if TYPE_CHECKING:
    from farm.search.candidate import Candidate
    from farm.search.objectives import OBJECTIVES, Objective
    from farm.search.space import plan, target_space

#: Public name -> the module that defines it (imported on first use).
_EXPORTS = {
    "Candidate": "farm.search.candidate",
    "OBJECTIVES": "farm.search.objectives",
    "Objective": "farm.search.objectives",
    "plan": "farm.search.space",
    "target_space": "farm.search.space",
}
__all__ = ["OBJECTIVES", "Candidate", "Objective", "plan", "target_space"]
__getattr__, __dir__ = lazy_exports("farm.search", _EXPORTS)
