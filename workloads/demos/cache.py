"""The embedded demos' models, trained once and cached by the hash of their recipe."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from farm._io import atomic_write


def cached_training(
    path: Path, train: Callable[[], tuple[bytes, dict[str, Any]]]
) -> tuple[bytes, dict[str, Any]]:
    """An embedded model's state and training report, from ``path`` (and ``path`` with the
    ``.json`` suffix) or trained now by ``train()`` and written there atomically (readers never
    see a torn file; two processes training at once both write whole files)."""
    report_path = path.with_suffix(".json")
    if not path.exists():
        state, report = train()
        atomic_write(report_path, json.dumps(report, indent=2).encode())
        atomic_write(path, state)
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    return path.read_bytes(), report
