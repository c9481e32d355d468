"""Re-exports a package imports on first use (PEP 562 module ``__getattr__``).

A package's public names are re-exported from its ``__init__`` (STYLE: layout shows the
architecture), but importing ``farm.store`` for its records must not import DuckDB, and
``farm.engine.pricing`` must stay importable where Optuna is missing: each name's module is
imported only when the name is first read.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose public ``exports`` map each name to the
    module defining it."""

    def getattr_(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted({*importlib.import_module(package).__dict__, *exports})

    return getattr_, dir_
