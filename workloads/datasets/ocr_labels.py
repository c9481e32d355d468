"""OCR label files as users have them, read and checked line by line before anything runs.

Three formats (PaddleOCR's tools convert between them, ``ppocr/utils/gen_label.py``):

* **recognition** (PaddleOCR ``SimpleDataSet``): one line per image, ``<image path><TAB><text>``,
  UTF-8; ICDAR 2015's word ground truth ``word_1.png, "Genaxis Theatre"`` is read too;
* **detection** (PaddleOCR): ``<image path><TAB>[{"transcription": "MASA", "points": [[x, y],
  ...]}, ...]``, points clockwise from the top-left, transcription ``###`` = don't care;
* **ICDAR 2015 detection**: a folder of ``gt_<image stem>.txt`` files, one per image, lines
  ``x1,y1,x2,y2,x3,y3,x4,y4,transcription`` (UTF-8, often with a BOM), ``###`` = don't care.

Image paths in a label file are relative to the image folder (``workload.data.eval``), as
PaddleOCR writes them with its ``data_dir``, or to the label file's own folder. Every problem is
a :class:`~farm.errors.SpecError` naming the label file, the job field and job file that named
it, and the line::

    rec_gt.txt (`workload.data.eval_labels` in job.toml): field `line 12`: expected
    `<image path><TAB><text>`, got 'word_12.png Hello'
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm._validate import is_number
from farm.errors import SpecError
from workloads.datasets.common import IMAGE_SUFFIXES, list_images

#: The transcription that marks a region as "don't care" (ICDAR, PaddleOCR).
DONT_CARE = "###"
#: ICDAR 2015 word recognition ground truth: ``word_1.png, "Genaxis Theatre"``.
_ICDAR_WORD = re.compile(r'^(?P<path>[^,\t]+),\s*"(?P<text>.*)"\s*$')


@dataclass(frozen=True)
class TextRegion:
    """One ground-truth text region of an image: a polygon and its transcription."""

    points: tuple[tuple[float, float], ...]
    text: str

    @property
    def ignore(self) -> bool:
        return self.text == DONT_CARE


@dataclass(frozen=True)
class Labelled:
    """One labelled image: its stable id (the path as the label file writes it, relative to
    the image folder), the file, and its ground truth (a string, or text regions)."""

    id: str
    path: Path
    truth: Any


def label_source(path: Path, field: str, source: str | Path) -> str:
    """How errors name a label file: its path, and the job field and file that named it."""
    return f"{path} (`{field}` in {source})"


def _lines(path: Path, where: str) -> Iterator[tuple[int, str]]:
    """(line number, line without its end of line) of a UTF-8 file; blank lines skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(where, "<file>", f"a UTF-8 text file ({exc})") from None
    except OSError as exc:
        raise SpecError(where, "<file>", f"a readable file ({exc})") from None
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            yield n, line


def _image(
    name: str, images: Path, labels: Path, where: str, n: int, seen: dict[str, int]
) -> tuple[str, Path]:
    """The image a label line names (relative to ``images`` or to the label file's folder),
    checked to exist and to be named once; returns (stable id, path)."""
    name = name.strip()
    rel = Path(name)
    candidates = [rel] if rel.is_absolute() else [images / rel, labels.parent / rel]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        tried = " or ".join(str(p) for p in candidates)
        raise SpecError(where, f"line {n}", f"an existing image file ({tried})", name)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise SpecError(where, f"line {n}", f"an image ({', '.join(IMAGE_SUFFIXES)})", name)
    try:
        image_id = path.resolve().relative_to(images.resolve()).as_posix()
    except ValueError:
        image_id = name
    if image_id in seen:
        raise SpecError(
            where, f"line {n}", f"each image once (line {seen[image_id]} names it already)", name
        )
    seen[image_id] = n
    return image_id, path


def read_rec_labels(path: Path, images: Path, field: str, source: str | Path) -> list[Labelled]:
    """A recognition label file: ``<image path><TAB><text>`` per line (or ICDAR 2015's
    ``word_1.png, "text"``); the text is kept as written."""
    where = label_source(path, field, source)
    seen: dict[str, int] = {}
    out = []
    for n, line in _lines(path, where):
        if "\t" in line:
            name, text = line.split("\t", 1)
        elif (m := _ICDAR_WORD.match(line)) is not None:
            name, text = m["path"], m["text"].replace('\\"', '"').replace("\\\\", "\\")
        else:
            raise SpecError(where, f"line {n}", "`<image path><TAB><text>`", line[:80])
        if not name.strip():
            raise SpecError(where, f"line {n}", "an image path before the TAB", line[:80])
        image_id, image = _image(name, images, path, where, n, seen)
        out.append(Labelled(image_id, image, text))
    if not out:
        raise SpecError(where, "<file>", "at least one labelled image")
    return out


def read_det_labels(path: Path, images: Path, field: str, source: str | Path) -> list[Labelled]:
    """Detection ground truth: a PaddleOCR label file, or a folder of ICDAR 2015 files."""
    if path.is_dir():
        return _read_icdar_folder(path, images, field, source)
    where = label_source(path, field, source)
    seen: dict[str, int] = {}
    out = []
    for n, line in _lines(path, where):
        name, sep, rest = line.partition("\t")
        if not sep or not name.strip():
            raise SpecError(
                where, f"line {n}", '`<image path><TAB>[{"transcription", "points"}, ...]`', line
            )
        try:
            regions = json.loads(rest)
        except json.JSONDecodeError as exc:
            raise SpecError(where, f"line {n}", f"a JSON list after the TAB ({exc})") from None
        if not isinstance(regions, list):
            raise SpecError(where, f"line {n}", "a JSON list of regions", type(regions).__name__)
        truth = tuple(_region(r, where, f"line {n}: region {k}") for k, r in enumerate(regions))
        image_id, image = _image(name, images, path, where, n, seen)
        out.append(Labelled(image_id, image, truth))
    if not out:
        raise SpecError(where, "<file>", "at least one labelled image")
    return out


def _region(value: Any, where: str, field: str) -> TextRegion:
    if not isinstance(value, dict):
        raise SpecError(where, field, 'an object {"transcription", "points"}', value)
    text = value.get("transcription")
    if not isinstance(text, str):
        raise SpecError(where, f"{field}.transcription", "a string", text)
    return TextRegion(_points(value.get("points"), where, f"{field}.points"), text)


def _points(value: Any, where: str, field: str) -> tuple[tuple[float, float], ...]:
    ok = isinstance(value, list) and len(value) >= 3
    ok = ok and all(
        isinstance(p, list) and len(p) == 2 and all(is_number(v) for v in p) for p in value
    )
    if not ok:
        raise SpecError(where, field, "a polygon: a list of at least 3 [x, y] points", value)
    return tuple((float(x), float(y)) for x, y in value)


def _read_icdar_folder(
    folder: Path, images: Path, field: str, source: str | Path
) -> list[Labelled]:
    """Every image of ``images`` with its ``gt_<stem>.txt`` in ``folder``."""
    files = list_images(images)
    if not files:
        raise SpecError(source, field.removesuffix("_labels"), "a folder of images", str(images))
    out = []
    for image in files:
        gt = folder / f"gt_{image.stem}.txt"
        if not gt.is_file():
            raise SpecError(
                label_source(folder, field, source),
                f"gt_{image.stem}.txt",
                f"a ground-truth file for every image of {images} (ICDAR 2015: gt_<image>.txt)",
                image.name,
            )
        where = label_source(gt, field, source)
        regions = tuple(_icdar_line(line, where, n) for n, line in _lines(gt, where))
        out.append(Labelled(image.relative_to(images).as_posix(), image, regions))
    return out


def _icdar_line(line: str, where: str, n: int) -> TextRegion:
    """``x1,y1,...,x4,y4,transcription`` (the transcription may hold commas)."""
    parts = line.split(",", 8)
    try:
        coords = [float(v) for v in parts[:8]]
    except ValueError:
        coords = []
    if len(parts) < 9 or len(coords) != 8:
        raise SpecError(where, f"line {n}", "`x1,y1,x2,y2,x3,y3,x4,y4,transcription`", line[:80])
    points = tuple((coords[i], coords[i + 1]) for i in range(0, 8, 2))
    return TextRegion(points, parts[8])
