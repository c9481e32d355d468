"""When two measurements may be compared, and how much quality may move: shared by the release
history and the CI gate.

A latency difference between two jobs is a regression of the change under test only when both
were measured in the same environment under the same contract; the farm's own commit is exactly
what a history or a gate compares, so it is never a reason to refuse. Quality (the task's primary
metric) is computed on the whole eval split, deterministically: there is no sampling noise to
test, only a tolerance the team accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Fingerprint keys that may differ between a baseline and a candidate.
IGNORED_ENV_KEYS = frozenset({"farm_commit"})
#: Default tolerance on the primary quality metric: a drop larger than this (absolute) is a
#: regression.
DEFAULT_QUALITY_TOLERANCE = 0.002


def differences(
    a: Mapping[str, Any], b: Mapping[str, Any], ignore: frozenset[str] = frozenset()
) -> list[str]:
    """The keys whose values differ between two mappings (fingerprints, contracts), sorted."""
    keys = sorted((set(a) | set(b)) - ignore)
    return [k for k in keys if a.get(k) != b.get(k)]
