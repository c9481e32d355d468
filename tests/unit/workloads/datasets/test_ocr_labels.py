"""OCR label files read as users have them (PaddleOCR recognition and detection files, ICDAR 2015
per-image files): stable ids, paths relative to the image folder or to the label file, and every
problem naming the label file, the job field and file that named it, and the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from farm.errors import SpecError
from workloads.datasets.ocr_labels import read_det_labels, read_rec_labels

FIELD = "workload.data.eval_labels"


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "lines"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "b.jpg", "sub/c.png"):
        Image.new("RGB", (20, 8), "white").save(folder / name)
    return folder


def _labels(tmp_path: Path, text: str, name: str = "rec_gt.txt") -> Path:
    path = tmp_path / "data" / name
    path.write_text(text, encoding="utf-8")
    return path


def test_recognition_lines_keep_their_text_and_a_stable_id(tmp_path: Path, images: Path) -> None:
    # relative to the image folder (PaddleOCR's data_dir) or to the label file's folder
    path = _labels(tmp_path, "a.png\tHello  world \nlines/sub/c.png\t\n\nb.jpg\tÉté 12\r\n")
    rows = read_rec_labels(path, images, FIELD, "job.toml")
    assert [(r.id, r.truth) for r in rows] == [
        ("a.png", "Hello  world "),
        ("sub/c.png", ""),
        ("b.jpg", "Été 12"),
    ]
    assert rows[1].path == images / "sub" / "c.png"


def test_icdar_word_ground_truth_is_read_too(tmp_path: Path, images: Path) -> None:
    path = _labels(tmp_path, '\ufeffa.png, "Genaxis Theatre"\nb.jpg, "say \\"hi\\""\n')
    rows = read_rec_labels(path, images, FIELD, "job.toml")
    assert [r.truth for r in rows] == ["Genaxis Theatre", 'say "hi"']


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("a.png\tok\nb.jpg no tab\n", 2, "<TAB>"),
        ("a.png\tok\n\n\nmissing.png\tx\n", 4, "an existing image file"),
        ("a.png\tok\nlines/a.png\tagain\n", 2, "line 1 names it already"),
        ("\tno path\n", 1, "an image path"),
        ("rec_gt.txt\tnot an image\n", 1, "an image"),
    ],
)
def test_a_bad_recognition_line_names_the_file_the_field_and_the_line(
    tmp_path: Path, images: Path, text: str, line: int, expected: str
) -> None:
    path = _labels(tmp_path, text)
    with pytest.raises(SpecError) as err:
        read_rec_labels(path, images, FIELD, "job.toml")
    assert err.value.field == f"line {line}"
    assert expected in err.value.expected
    assert str(path) in err.value.path and FIELD in err.value.path and "job.toml" in err.value.path


def test_an_empty_or_undecodable_label_file_is_refused(tmp_path: Path, images: Path) -> None:
    with pytest.raises(SpecError, match="at least one labelled image"):
        read_rec_labels(_labels(tmp_path, "\n\n"), images, FIELD, "job.toml")
    path = tmp_path / "data" / "latin1.txt"
    path.write_bytes("a.png\tét\xe9".encode("latin-1"))
    with pytest.raises(SpecError, match="UTF-8"):
        read_rec_labels(path, images, FIELD, "job.toml")


def test_detection_lines_give_regions_with_dont_care(tmp_path: Path, images: Path) -> None:
    regions = [
        {"transcription": "MASA", "points": [[0, 0], [10, 0], [10, 5], [0, 5]]},
        {"transcription": "###", "points": [[1, 1], [4, 1], [4, 4.5]]},
    ]
    path = _labels(tmp_path, f"a.png\t{json.dumps(regions)}\nb.jpg\t[]\n", "det_gt.txt")
    rows = read_det_labels(path, images, FIELD, "job.toml")
    assert [r.id for r in rows] == ["a.png", "b.jpg"]
    first, second = rows[0].truth
    assert first.text == "MASA" and not first.ignore and first.points[2] == (10.0, 5.0)
    assert second.ignore and rows[1].truth == ()


@pytest.mark.parametrize(
    ("rest", "field", "expected"),
    [
        ("[{]", "line 1", "a JSON list"),
        ('{"transcription": "x"}', "line 1", "a JSON list of regions"),
        ('[{"points": [[0, 0], [1, 0], [1, 1]]}]', "line 1: region 0.transcription", "a string"),
        ('[{"transcription": "x", "points": [[0, 0], [1, 0]]}]', "line 1: region 0.points", "3"),
        (
            '[{"transcription": "x", "points": [[0, 0], [1, "a"], [2, 2]]}]',
            "line 1: region 0.points",
            "[x, y]",
        ),
        ("[3]", "line 1: region 0", "an object"),
    ],
)
def test_a_bad_detection_line_names_the_line_and_the_region(
    tmp_path: Path, images: Path, rest: str, field: str, expected: str
) -> None:
    path = _labels(tmp_path, f"a.png\t{rest}\n", "det_gt.txt")
    with pytest.raises(SpecError) as err:
        read_det_labels(path, images, FIELD, "job.toml")
    assert err.value.field == field and expected in err.value.expected
    assert str(path) in err.value.path


def test_an_icdar_folder_gives_every_image_its_regions(tmp_path: Path, images: Path) -> None:
    gt = tmp_path / "gt"
    gt.mkdir()
    (gt / "gt_a.txt").write_text("\ufeff1,2,11,2,11,9,1,9,Hello, world\n0,0,3,0,3,3,0,3,###\n")
    (gt / "gt_b.txt").write_text("")
    rows = read_det_labels(gt, images, FIELD, "job.toml")  # the folder's own images
    assert [r.id for r in rows] == ["a.png", "b.jpg"]
    hello, dont_care = rows[0].truth
    assert hello.text == "Hello, world" and hello.points[1] == (11.0, 2.0)
    assert dont_care.ignore and rows[1].truth == ()
    (gt / "gt_b.txt").write_text("\n5,5,6,5,6,x\n")
    with pytest.raises(SpecError) as err:
        read_det_labels(gt, images, FIELD, "job.toml")
    assert err.value.field == "line 2" and "gt_b.txt" in err.value.path
    (gt / "gt_b.txt").unlink()
    with pytest.raises(SpecError, match=r"gt_<image>\.txt"):
        read_det_labels(gt, images, FIELD, "job.toml")
