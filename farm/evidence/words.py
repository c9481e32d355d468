"""The sentence a lead reads about a candidate's quality change.

``int8: accuracy −0.19 pt [−0.56, +0.19] at 95 %, 1 image broken, 0 fixed; no significant
change``: the change in percentage points (every primary metric lies in [0, 1]), its paired
interval, the flips, and the verdict, which names a change only where the interval excludes
none.
"""

from __future__ import annotations

from farm.evidence.paired import Comparison


def points(value: float, signed: bool = True) -> str:
    """``value`` (a fraction) in percentage points with a true minus sign: ``−0.19``; a value
    that rounds to zero has no minus (``+0.00``, not ``−0.00``)."""
    text = f"{value * 100:+.2f}" if signed else f"{value * 100:.2f}"
    if text.startswith("-") and not text.strip("-0."):
        text = ("+" if signed else "") + text[1:]
    return text.replace("-", "\u2212")


def describe(c: Comparison, label: str | None = None) -> str:
    """One line: change, interval, flips, verdict (``label`` first when given)."""
    images = "image" if c.broken == 1 else "images"
    head = f"{label}: " if label else ""
    if c.verdict == "no significant change":
        verdict = "no significant change"
    else:
        verdict = f"significantly {c.verdict}"
    return (
        f"{head}{c.metric} {points(c.delta)} pt [{points(c.low)}, {points(c.high)}] at "
        f"{c.confidence:.0%}".replace("%", " %")
        + f", {c.broken} {images} broken, {c.fixed} fixed; {verdict}"
        + (f" (McNemar p = {c.p_value:.2g})" if c.p_value is not None else "")
    )
