"""Small, dependency-free helpers shared by the engine and the plug-ins: stable hashes, atomic
file writes, and JSON columns read back as mappings.

Part of the shared kernel: ``targets``, ``workloads`` and ``optimizers`` may import it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def stable_hash(obj: Any) -> str:
    """A short hash of a JSON-able object (non-JSON values by ``str``): candidates' content
    hashes and build keys. Its exact output is stored in every trial (``candidate_hash``,
    ``build_key``): changing it would orphan every cached artifact and resumable job."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def hash_json(obj: Any) -> str:
    """A short hash of a JSON-able object in compact form: workloads' recipe hashes. Stored in
    build keys like :func:`stable_hash`, so its output must not change either."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def hash_file(path: Path) -> str:
    """sha256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename (no torn files for readers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_mapping(value: Any) -> dict[str, Any]:
    """A JSON column as a dict: DuckDB returns JSON as text, a record holds it parsed, and a
    missing value (a failed trial's contract) is an empty dict."""
    if value is None:
        return {}
    if isinstance(value, str | bytes):
        parsed = json.loads(value) if value else {}
        return dict(parsed) if isinstance(parsed, Mapping) else {}
    return dict(value)


def canonical_json(value: Any) -> str:
    """``value`` as canonical JSON text (sorted keys, numpy scalars as Python numbers): what the
    store writes into a JSON column."""
    return json.dumps(value, sort_keys=True, default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)
