"""How a text line that a candidate reads differently from fp32 is shown to a person: the line's
image with the two strings under it, the characters that differ marked (red in the image,
``<mark>`` in HTML). For the error gallery and the report (they call these; nothing here is
imported by the task itself, which stays numpy-only).

The differing characters come from the edit operations that turn the fp32 string into the
candidate's (rapidfuzz's ``Levenshtein.opcodes``): replaced and deleted characters are marked
in the fp32 string, replaced and inserted ones in the candidate's.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Colours of the drawing: ink, marked characters, background.
INK, MARK, PAPER = (20, 20, 20), (210, 30, 30), (255, 255, 255)


def marked(fp32: str, candidate: str) -> tuple[list[bool], list[bool]]:
    """Per character of each string, whether it differs (see the module docstring)."""
    from rapidfuzz.distance import Levenshtein

    left, right = [False] * len(fp32), [False] * len(candidate)
    for op in Levenshtein.opcodes(fp32, candidate):
        if op.tag == "equal":
            continue
        left[op.src_start : op.src_end] = [True] * (op.src_end - op.src_start)
        right[op.dest_start : op.dest_end] = [True] * (op.dest_end - op.dest_start)
    return left, right


def html_diff(fp32: str, candidate: str) -> tuple[str, str]:
    """The two strings as HTML, differing characters in ``<mark>``."""

    def render(text: str, flags: list[bool]) -> str:
        return "".join(
            f"<mark>{html.escape(c)}</mark>" if f else html.escape(c)
            for c, f in zip(text, flags, strict=True)
        )

    left, right = marked(fp32, candidate)
    return render(fp32, left), render(candidate, right)


def draw_line(image: Any, fp32: str, candidate: str, font_size: int = 16) -> Any:
    """A PIL image: the line image (PIL or an HxWx3 uint8 array) over two rows of text, "fp32:"
    and "cand:" strings with their differing characters in red."""
    from PIL import Image, ImageDraw, ImageFont

    line = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    font = ImageFont.load_default(size=font_size)
    left, right = marked(fp32, candidate)
    rows = [("fp32: ", fp32, left), ("cand: ", candidate, right)]
    height = font_size + 6
    width = max(line.width, *(int(font.getlength(label + text)) + 8 for label, text, _ in rows))
    out = Image.new("RGB", (width, line.height + 2 * height + 4), PAPER)
    out.paste(line.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(out)
    for r, (label, text, flags) in enumerate(rows):
        x, y = 4.0, line.height + 4 + r * height
        draw.text((x, y), label, font=font, fill=INK)
        x += font.getlength(label)
        for c, flag in zip(text, flags, strict=True):
            draw.text((x, y), c, font=font, fill=MARK if flag else INK)
            if flag:
                draw.line((x, y + font_size + 2, x + font.getlength(c), y + font_size + 2), MARK)
            x += font.getlength(c)
    return out


def draw_lines(rows: Sequence[tuple[Any, str, str]], font_size: int = 16) -> Any:
    """Several ``(image, fp32 string, candidate string)`` drawings stacked, 8 px apart."""
    from PIL import Image

    tiles = [draw_line(image, a, b, font_size) for image, a, b in rows]
    width = max((t.width for t in tiles), default=1)
    out = Image.new("RGB", (width, sum(t.height + 8 for t in tiles) or 1), PAPER)
    y = 0
    for tile in tiles:
        out.paste(tile, (0, y))
        y += tile.height + 8
    return out
