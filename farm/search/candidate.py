"""Candidates: a workload + transform chain + target + runtime options, with a content hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from targets.base import RuntimeOptions

#: One transform step: (transform name, its config as sorted (field, value) pairs).
Step = tuple[str, tuple[tuple[str, Any], ...]]


def stable_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def step(name: str, config: dict[str, Any] | None = None) -> Step:
    return (name, tuple(sorted((config or {}).items())))


@dataclass(frozen=True)
class Candidate:
    workload_hash: str
    target: str
    chain: tuple[Step, ...]
    options: RuntimeOptions
    #: The knob values that define this candidate (what reports show as "params").
    params: tuple[tuple[str, Any], ...] = ()

    def build_key(self, upto: int | None = None) -> str:
        """Content key of the artifact after the first ``upto`` steps (all by default).

        Runtime options are not part of it: trials that differ only in batch, threads or hints
        reuse the same artifact.
        """
        chain = self.chain if upto is None else self.chain[:upto]
        return stable_hash([self.workload_hash, [[n, list(c)] for n, c in chain]])

    @property
    def content_hash(self) -> str:
        return stable_hash([self.build_key(), self.target, asdict(self.options)])

    def params_dict(self) -> dict[str, Any]:
        return dict(self.params)

    def __hash__(self) -> int:
        # knob values may be lists (an input size): the content hash stands for them
        return hash(self.content_hash)
