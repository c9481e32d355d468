"""Typed readers of user input: one way to check a TOML table, one error.

Every parser of user input (job files, ``[workload]``, ``[evaluation]``, budgets, label files,
gate options) reads its values through :class:`Fields`, so each failure is the same
:class:`~farm.errors.SpecError` naming the file, the field path, the rule and the value::

    f = Fields(section, source="job.toml", prefix="workload")
    f.only({"task", "nms_iou"})
    iou = f.number("nms_iou", 0.7, low=0, high=1, low_open=True, high_open=True)
    # job.toml: field `workload.nms_iou`: expected a number with 0 < x < 1, got 1.5

TOML booleans are never accepted as numbers (``True`` is an ``int`` in Python). Standard
library only: part of the shared kernel that plug-ins may import.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from farm.errors import SpecError


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Default of a field that must be given.
REQUIRED: Any = _Required()


def is_number(value: object) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is None and high is None:
        return ""
    parts = []
    if low is not None:
        parts.append(f"{low:g} {'<' if low_open else '<='} ")
    parts.append("x")
    if high is not None:
        parts.append(f" {'<' if high_open else '<='} {high:g}")
    return " with " + "".join(parts)


class Fields:
    """Typed reads of one table of user input; every failure a :class:`SpecError`.

    ``source`` is the file the table comes from (or ``"<dict>"``); ``prefix`` the table's path
    in it (``"workload.data"``), so that errors name ``workload.data.eval``."""

    def __init__(self, table: Mapping[str, Any], source: str | Path, prefix: str = "") -> None:
        if not isinstance(table, Mapping):
            raise SpecError(source, prefix or "<file>", "a table", table)
        self.table = table
        self.source = source
        self.prefix = prefix

    # -- structure ---------------------------------------------------------------------------
    def where(self, key: str) -> str:
        """The field path of ``key`` (``workload.nms_iou``)."""
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, expected: str, got: object = None) -> SpecError:
        """The error for ``key``: a caller's own rule, in the same words as the readers'."""
        return SpecError(self.source, self.where(key), expected, got)

    def __contains__(self, key: str) -> bool:
        return key in self.table

    def only(self, allowed: Collection[str]) -> None:
        """Refuse keys outside ``allowed`` (a typo is an error, never silently ignored)."""
        for key in self.table:
            if key not in allowed:
                raise self.error(key, f"one of the known fields {sorted(allowed)}")

    def table_of(self, key: str, *, required: bool = False) -> Fields:
        """The sub-table ``key`` (an empty one when absent and not required)."""
        if key not in self.table:
            if required:
                raise self.error(key, "a table (the field is required)")
            return Fields({}, self.source, self.where(key))
        value = self.table[key]
        if not isinstance(value, Mapping):
            raise self.error(key, "a table", value)
        return Fields(value, self.source, self.where(key))

    def _get(self, key: str, default: Any, expected: str) -> tuple[bool, Any]:
        """(present, value); a missing required field raises."""
        if key in self.table:
            return True, self.table[key]
        if default is REQUIRED:
            raise self.error(key, f"{expected} (the field is required)")
        return False, default

    # -- scalars -----------------------------------------------------------------------------
    def string(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        choices: Iterable[str] | None = None,
        expected: str | None = None,
    ) -> Any:
        """A non-empty string (one of ``choices`` when given)."""
        options = list(choices) if choices is not None else None
        what = expected or (f"one of {options}" if options else "a non-empty string")
        present, value = self._get(key, default, what)
        if not present:
            return value
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, what, value)
        if options is not None and value not in options:
            raise self.error(key, what, value)
        return value

    def flag(self, key: str, default: Any = REQUIRED) -> Any:
        present, value = self._get(key, default, "true or false")
        if present and not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def integer(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        low: int | None = None,
        high: int | None = None,
        expected: str | None = None,
    ) -> Any:
        """An integer in ``[low, high]``."""
        what = expected or ("an integer" + _interval(low, high, False, False))
        present, value = self._get(key, default, what)
        if not present:
            return value
        if not is_integer(value):
            raise self.error(key, what, value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(key, what, value)
        return int(value)

    def positive_int(self, key: str, default: Any = REQUIRED) -> Any:
        return self.integer(key, default, low=1, expected="a positive integer")

    def number(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        high_open: bool = False,
        expected: str | None = None,
    ) -> Any:
        """A finite number within the stated interval (ints are accepted and made floats)."""
        what = expected or ("a number" + _interval(low, high, low_open, high_open))
        present, value = self._get(key, default, what)
        if not present:
            return value
        if not is_number(value):
            raise self.error(key, what, value)
        if low is not None and (value < low or (low_open and value == low)):
            raise self.error(key, what, value)
        if high is not None and (value > high or (high_open and value == high)):
            raise self.error(key, what, value)
        return float(value)

    def fraction(self, key: str, default: Any = REQUIRED, *, low_open: bool = False) -> Any:
        """A number with ``0 <= x < 1`` (``0 < x < 1`` when ``low_open``)."""
        return self.number(key, default, low=0, high=1, low_open=low_open, high_open=True)

    # -- lists -------------------------------------------------------------------------------
    def strings(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        choices: Iterable[str] | None = None,
        allow_empty: bool = False,
        unique: bool = True,
    ) -> Any:
        """A list of non-empty strings (from ``choices`` when given), as a tuple."""
        options = list(choices) if choices is not None else None
        what = f"a {'' if allow_empty else 'non-empty '}list of " + (
            f"values from {options}" if options else "non-empty strings"
        )
        if unique:
            what += ", each at most once"
        present, value = self._get(key, default, what)
        if not present:
            return value
        ok = isinstance(value, list) and (allow_empty or bool(value))
        ok = ok and all(isinstance(v, str) and v.strip() for v in value)
        ok = ok and (options is None or all(v in options for v in value))
        ok = ok and (not unique or len(set(value)) == len(value))
        if not ok:
            raise self.error(key, what, value)
        return tuple(value)

    def numbers(
        self,
        key: str,
        default: Any = REQUIRED,
        *,
        length: int | None = None,
        integers: bool = False,
        low: float | None = None,
        expected: str | None = None,
    ) -> Any:
        """A non-empty list of numbers (of ``length`` when given), as a tuple."""
        kind = "integers" if integers else "numbers"
        what = expected or (
            (f"a list of {length} {kind}" if length else f"a non-empty list of {kind}")
            + (f" >= {low:g}" if low is not None else "")
        )
        present, value = self._get(key, default, what)
        if not present:
            return value
        check = is_integer if integers else is_number
        ok = isinstance(value, list) and bool(value) and all(check(v) for v in value)
        ok = ok and (length is None or len(value) == length)
        ok = ok and (low is None or all(v >= low for v in value))
        if not ok:
            raise self.error(key, what, value)
        return tuple(int(v) if integers else float(v) for v in value)

    # -- files -------------------------------------------------------------------------------
    def path(
        self, key: str, base_dir: Path, default: Any = REQUIRED, *, kind: str | None = None
    ) -> Any:
        """A path relative to ``base_dir`` (the job file's folder); ``kind`` ``"file"`` or
        ``"dir"`` requires it to exist as one."""
        what = {"file": "an existing file", "dir": "an existing directory"}.get(
            kind or "", "a path"
        )
        present, value = self._get(key, default, what)
        if not present:
            return value
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"{what} (a string)", value)
        path = Path(value)
        if not path.is_absolute():
            path = base_dir / path
        if kind == "file" and not path.is_file():
            raise self.error(key, what, str(path))
        if kind == "dir" and not path.is_dir():
            raise self.error(key, what, str(path))
        return path
