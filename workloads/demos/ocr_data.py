"""Seeded text images for the OCR demos, written as a user's data would be.

Text lines (recognition): ``eval/line_0000.png`` … with ``rec_gt.txt`` in PaddleOCR's format
(``eval/line_0000.png<TAB>text``, paths relative to the label file's folder) and a ``calib/``
folder of other lines. Pages (detection): ``pages/page_000.png`` … with ``det_gt.txt``
(``pages/page_000.png<TAB>[{"transcription", "points"}]``) and ``calib_pages/``.

The glyphs come from Pillow's built-in scalable font (``ImageFont.load_default(size=N)``): no
font file of the machine is read, so the images depend on the seed and the Pillow version only.
The texts mix dictionary words, capitalised words, numbers, dates, prices and codes, in dark ink
on light paper with a little colour, blur and noise: what a document scanner or a photo of a
label gives a recogniser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from farm._io import atomic_write

#: Bump when the rendering changes: the data set's folder (and so its recipe) changes with it.
GENERATOR_VERSION = 1
_WORD_TEXT = (
    "account address amount answer balance bank battery board book box bridge budget camera "
    "card carbon center change charge check city client code color company contract copy "
    "cost country credit customer data date delivery design device direct document door "
    "energy engine entry factory field file final filter flight floor form frame garden "
    "gate glass green ground group health history house image index input invoice item "
    "journal label laser level light line list machine market master media metal meter "
    "model money month motor music network night notice number office order output owner "
    "page paper parcel parking patient payment phone picture plant platform point power "
    "price print product profile project quality quarter radio receipt record region "
    "report river road room route safety sample scale school screen season section sensor "
    "service signal silver small software source space speed station status steel stock "
    "store street studio style summer supply system table target ticket total tower track "
    "train transfer travel value vector video village visit volume water weight window "
    "winter world yellow"
)
WORDS = tuple(_WORD_TEXT.split())
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class LinesDataset:
    """Where a written line data set is."""

    root: Path
    eval_images: Path
    eval_labels: Path
    calib_images: Path


@dataclass(frozen=True)
class PagesDataset:
    """Where a written page data set is."""

    root: Path
    eval_images: Path
    eval_labels: Path
    calib_images: Path


def random_text(rng: np.random.Generator) -> str:
    """One line's text: 1-4 words, a number, a date, a price or a code."""
    kind = int(rng.integers(0, 6))
    if kind == 0:
        return " ".join(str(w) for w in rng.choice(WORDS, int(rng.integers(1, 4))))
    if kind == 1:
        words = rng.choice(WORDS, int(rng.integers(1, 3)))
        return " ".join(str(w).capitalize() for w in words) + f" {int(rng.integers(1, 99999))}"
    if kind == 2:
        return f"{int(rng.integers(1, 29))} {rng.choice(MONTHS)} {int(rng.integers(1990, 2031))}"
    if kind == 3:
        return f"Total ${int(rng.integers(1, 9999))}.{int(rng.integers(0, 100)):02d}"
    if kind == 4:
        letters = "".join(rng.choice(list("ABCDEFGHJKLMNPRSTUVWXYZ"), 3))
        return f"{letters}-{int(rng.integers(100, 99999))}"
    return str(rng.choice(WORDS)).upper() + f" {rng.choice(WORDS)}"


def _colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    paper = tuple(int(v) for v in rng.integers(200, 256, 3))
    ink = tuple(int(v) for v in rng.integers(0, 70, 3))
    return paper, ink


def render_line(text: str, rng: np.random.Generator) -> Any:
    """``text`` as a tight RGB line image (PIL) with a few pixels of margin."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    font = ImageFont.load_default(size=int(rng.integers(20, 41)))
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    pad_x, pad_y = int(rng.integers(3, 12)), int(rng.integers(3, 9))
    paper, ink = _colours(rng)
    image = Image.new("RGB", (right - left + 2 * pad_x, bottom - top + 2 * pad_y), paper)
    ImageDraw.Draw(image).text((pad_x - left, pad_y - top), text, font=font, fill=ink)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.9))))
    return _noisy(image, rng)


def _noisy(image: Any, rng: np.random.Generator) -> Any:
    from PIL import Image

    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0.0, float(rng.uniform(0.0, 6.0)), pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _save(image: Any, path: Path) -> None:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write(path, buf.getvalue())


def write_lines_dataset(root: Path, *, seed: int, n_eval: int, n_calib: int) -> LinesDataset:
    """Write (once) ``n_eval`` labelled lines and ``n_calib`` calibration lines under ``root``;
    the label file is written last, so a complete file means a complete data set."""
    root = Path(root)
    out = LinesDataset(root, root / "eval", root / "rec_gt.txt", root / "calib")
    if out.eval_labels.is_file():
        return out
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_eval):
        text = random_text(rng)
        _save(render_line(text, rng), out.eval_images / f"line_{i:04d}.png")
        rows.append(f"eval/line_{i:04d}.png\t{text}")
    for i in range(n_calib):
        _save(render_line(random_text(rng), rng), out.calib_images / f"calib_{i:04d}.png")
    atomic_write(out.eval_labels, ("\n".join(rows) + "\n").encode("utf-8"))
    return out


def render_page(rng: np.random.Generator, size: tuple[int, int]) -> tuple[Any, list[dict]]:
    """A page (PIL, ``size`` = (H, W)) with a few text lines at random places that do not
    overlap, and their regions as PaddleOCR writes them (clockwise quads from the top-left)."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = size
    paper, ink = _colours(rng)
    page = Image.new("RGB", (w, h), paper)
    draw = ImageDraw.Draw(page)
    regions: list[dict] = []
    y = int(rng.integers(6, 24))
    while True:
        font = ImageFont.load_default(size=int(rng.integers(18, 33)))
        text = random_text(rng)
        left, top, right, bottom = (int(v) for v in draw.textbbox((0, 0), text, font=font))
        if y + bottom - top + 4 > h or right - left + 8 > w:
            break
        x = int(rng.integers(4, max(5, w - (right - left) - 4)))
        draw.text((x - left, y - top), text, font=font, fill=ink)
        x0, y0, x1, y1 = x - 2, y - 2, x + right - left + 2, y + bottom - top + 2
        regions.append({"transcription": text, "points": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]})
        y += bottom - top + int(rng.integers(10, 40))
    return _noisy(page, rng), regions


def write_pages_dataset(
    root: Path, *, seed: int, n_eval: int, n_calib: int, size: tuple[int, int]
) -> PagesDataset:
    """Write (once) ``n_eval`` labelled pages and ``n_calib`` calibration pages under ``root``."""
    root = Path(root)
    out = PagesDataset(root, root / "pages", root / "det_gt.txt", root / "calib_pages")
    if out.eval_labels.is_file():
        return out
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_eval):
        page, regions = render_page(rng, size)
        _save(page, out.eval_images / f"page_{i:03d}.png")
        rows.append(f"pages/page_{i:03d}.png\t{json.dumps(regions, ensure_ascii=False)}")
    for i in range(n_calib):
        _save(render_page(rng, size)[0], out.calib_images / f"calib_{i:03d}.png")
    atomic_write(out.eval_labels, ("\n".join(rows) + "\n").encode("utf-8"))
    return out
