"""Text recognition: greedy CTC decoding in PaddleOCR's class layout, CER/WER/exact/1-NED equal
to independent implementations, per-line evidence that recomputes CER on any resample, and the
task's contract."""

from __future__ import annotations

import numpy as np
import pytest
from contracts.task_contract import TaskCase, TaskContract

from farm._validate import Fields
from farm.errors import SpecError
from workloads.data import Split, WorkloadData
from workloads.tasks import ModelFacts, Task, TextRecognition, higher_is_better, make_task
from workloads.tasks import _text_metrics as tm
from workloads.tasks.text_recognition import greedy_decode

CHARSET = tuple("abcdefgh")
FACTS = ModelFacts(metadata={"character": "\n".join(CHARSET)})


def one_hot_columns(texts: list[str], table: tuple[str, ...], width: int) -> np.ndarray:
    """[N, width, C] probabilities whose greedy decoding reads ``texts`` (each character then a
    blank column, so repeated characters survive the merge)."""
    out = np.full((len(texts), width, len(table)), 0.01, dtype=np.float32)
    blank = table.index("")
    for n, text in enumerate(texts):
        cols = [c for ch in text for c in (table.index(ch), blank)]
        cols += [blank] * (width - len(cols))
        for t, k in enumerate(cols[:width]):
            out[n, t, k] = 0.9
    return out


class TestTextRecognitionContract(TaskContract):
    @pytest.fixture
    def task(self) -> Task:
        return TextRecognition(charset=CHARSET)

    @pytest.fixture
    def case(self) -> TaskCase:
        task = TextRecognition(charset=CHARSET)
        truth = ("abc", "bad cafe", "hh", "dead", " fade ", "g")
        read = ["abc", "bad cafe", "h", "deed", "fade", "gg"]
        scores = one_hot_columns(read, task.table, 20)
        infos = tuple({"image_id": i} for i in range(6))
        ids = tuple(f"lines/line_{i}.png" for i in range(6))
        split = Split(np.zeros((6, 3, 8, 32), np.float32), None, truth, infos, ids)
        data = WorkloadData(None, split, split, 0, (3, 8, 32), True)
        batches = [[scores[:4]], [scores[4:]]]
        return TaskCase(batches, [list(infos[:4]), list(infos[4:])], split, data, {}, FACTS)


def random_strings(rng: np.random.Generator, n: int, alphabet: str) -> list[str]:
    return ["".join(rng.choice(list(alphabet), int(rng.integers(1, 25)))) for _ in range(n)]


def test_cer_and_wer_equal_jiwer_and_torchmetrics_on_random_string_pairs() -> None:
    import jiwer
    from torchmetrics.text import CharErrorRate, WordErrorRate

    rng = np.random.default_rng(0)
    alphabet = "ab cdé1 "
    refs = [r for r in random_strings(rng, 300, alphabet) if r.strip()]
    hyps = random_strings(rng, len(refs), alphabet)
    task = TextRecognition(charset=tuple("abcdé1"))
    lines = [tm.normalize(h) for h in hyps]
    got = tm.text_metrics(lines, [tm.normalize(r) for r in refs])
    assert got["cer"] == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
    assert got["wer"] == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    stripped_refs, stripped_hyps = [r.strip() for r in refs], [h.strip() for h in hyps]
    assert got["cer"] == pytest.approx(
        float(CharErrorRate()(stripped_hyps, stripped_refs)), rel=1e-6
    )
    assert got["wer"] == pytest.approx(
        float(WordErrorRate()(stripped_hyps, stripped_refs)), rel=1e-6
    )
    assert got["exact_match"] == pytest.approx(
        np.mean([h == r for h, r in zip(stripped_hyps, stripped_refs, strict=True)])
    )
    assert task.lower_is_better == {"cer", "wer", "cer_vs_fp32"}


def levenshtein(a: str, b: str) -> int:
    """The textbook dynamic programme (an implementation independent of rapidfuzz)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def test_one_minus_ned_is_paddleocrs_mean_normalised_edit_distance() -> None:
    rng = np.random.default_rng(1)
    refs = random_strings(rng, 200, "xyz")
    hyps = random_strings(rng, 200, "xyz")
    want = 1 - np.mean(
        [levenshtein(h, r) / max(len(h), len(r)) for h, r in zip(hyps, refs, strict=True)]
    )
    assert tm.text_metrics(hyps, refs)["one_minus_ned"] == pytest.approx(want, abs=1e-12)
    np.testing.assert_array_equal(
        tm.char_edits(hyps, refs), [levenshtein(h, r) for h, r in zip(hyps, refs, strict=True)]
    )


def test_empty_references_give_zero_unless_something_was_read() -> None:
    assert tm.text_metrics(["", ""], ["", ""])["cer"] == 0.0
    assert tm.text_metrics(["a", ""], ["", ""])["cer"] == 1.0


def test_cer_is_lower_is_better_for_the_whole_farm() -> None:
    assert not higher_is_better("cer") and not higher_is_better("cer_vs_fp32")
    assert higher_is_better("exact_match") and higher_is_better("one_minus_ned")


def test_greedy_decoding_merges_repeats_drops_blanks_and_reads_logits_like_probabilities() -> None:
    task = TextRecognition(charset=CHARSET)
    # PaddleOCR's layout: 0 = blank, 1.. = the dictionary, last = space
    assert task.table[0] == "" and task.table[1] == "a" and task.table[-1] == " "
    a, b, blank, space = 1, 2, 0, task.num_classes - 1
    cols = [a, a, blank, a, b, b, space, blank, b]
    probs = np.full((1, len(cols), task.num_classes), 0.01, np.float32)
    probs[0, np.arange(len(cols)), cols] = 0.9
    (line,) = greedy_decode(probs, task.table, task.blank_index)
    assert line.text == "aab b"
    assert line.confidence == pytest.approx(0.9)
    logits = np.log(probs / probs.sum(axis=2, keepdims=True))
    (again,) = greedy_decode(logits, task.table, task.blank_index, logits=True)
    assert again.text == line.text
    assert again.confidence == pytest.approx(0.9 / probs[0, 0].sum(), rel=1e-5)


def test_the_blank_can_be_last_and_the_space_left_out() -> None:
    section = Fields(
        {"task": "text_recognition", "blank_index": -1, "use_space_char": False},
        "job.toml",
        "workload",
    )
    task = make_task("text_recognition", section, FACTS)
    assert task.num_classes == len(CHARSET) + 1
    assert task.table == (*CHARSET, "")
    probs = one_hot_columns(["fab"], task.table, 8)
    assert [ln.text for ln in task.decode([probs], [{}])] == ["fab"]


def test_the_character_set_comes_from_a_dictionary_file_relative_to_the_job(tmp_path) -> None:
    (tmp_path / "keys.txt").write_text("x\ny\nz\n", encoding="utf-8")
    section = Fields({"dictionary": "keys.txt"}, "job.toml", "workload")
    task = TextRecognition.from_section(section, facts=ModelFacts(base_dir=tmp_path))
    assert task.charset == ("x", "y", "z") and task.num_classes == 5


def test_a_model_without_a_character_list_needs_a_dictionary() -> None:
    with pytest.raises(SpecError) as err:
        TextRecognition.from_section(Fields({}, "job.toml", "workload"), facts=ModelFacts())
    assert err.value.field == "workload.dictionary" and err.value.path == "job.toml"


def test_an_output_whose_class_count_disagrees_with_the_character_set_is_refused() -> None:
    task = TextRecognition(charset=CHARSET)
    with pytest.raises(ValueError, match="12 classes"):
        task.check_output_dims({"out": ("N", 40, 12)}, "N")
    task.check_output_dims({"out": ("N", "T", task.num_classes)}, "N")
    task.check_output_dims({"out": (1, 40, task.num_classes)}, 1)
    for seq_first in (("T", "N", task.num_classes), (40, "?", task.num_classes)):
        with pytest.raises(ValueError, match="batch first"):
            task.check_output_dims({"out": seq_first}, "N" if "N" in seq_first else "?")
    with pytest.raises(ValueError, match="the model"):
        task.check_outputs([np.zeros((2, 4, 12), np.float32)], "the model")


def test_case_folding_is_optional() -> None:
    task = TextRecognition(charset=tuple("aAbB"), case_sensitive=False)
    split = Split(np.zeros((1, 3, 4, 4), np.float32), truth=("Ab",))
    data = WorkloadData(None, split, split, 0, (3, 4, 4), True)
    probs = one_hot_columns(["aB"], task.table, 6)
    got = task.quality(task.decode([probs], [{}]), split, None, data)
    assert got["cer"] == 0.0
    strict = TextRecognition(charset=tuple("aAbB"))
    assert strict.quality(strict.decode([probs], [{}]), split, None, data)["cer"] == 1.0


def test_per_line_evidence_recomputes_cer_on_any_resample() -> None:
    rng = np.random.default_rng(2)
    task = TextRecognition(charset=CHARSET)
    refs = random_strings(rng, 40, "abcd efgh")
    refs = [r for r in refs if r.strip()]
    read = [tm.normalize(r) for r in random_strings(rng, len(refs), "abcdefgh")]
    probs = one_hot_columns(read, task.table, 60)
    preds = task.collect(task.decode([probs], [{}] * len(read)))
    ids = tuple(f"l{i}.png" for i in range(len(refs)))
    split = Split(np.zeros((len(refs), 1), np.float32), truth=tuple(refs), ids=ids)
    data = WorkloadData(None, split, split, 0, (1,), True)
    ev = task.evidence(preds, split, None)
    assert ev.ids == ids and ev.predicted == tuple(read)
    ones = np.ones((1, len(refs)))
    assert task.resampled_quality(ev, ones)[0] == task.quality(preds, split, None, data)["cer"]
    weights = rng.multinomial(len(refs), np.full(len(refs), 1 / len(refs)), size=5)
    for row, got in zip(weights, task.resampled_quality(ev, weights), strict=True):
        index = np.repeat(np.arange(len(refs)), row)
        sub = split.subset(index)
        want = task.quality(task.select(preds, index), sub, None, data)["cer"]
        assert got == pytest.approx(want, abs=1e-12)
    np.testing.assert_array_equal(
        ev.correct, [r.strip() == h for r, h in zip(refs, read, strict=True)]
    )


def test_without_labels_evidence_and_fidelity_are_against_the_fp32_strings() -> None:
    task = TextRecognition(charset=CHARSET)
    fp32 = task.decode([one_hot_columns(["abc", "dd"], task.table, 10)], [{}, {}])
    cand = task.decode([one_hot_columns(["abd", "dd"], task.table, 10)], [{}, {}])
    split = Split(np.zeros((2, 1), np.float32))
    data = WorkloadData(None, split, split, 0, (1,), False)
    got = task.quality(cand, split, fp32, data)
    assert got == {"cer_vs_fp32": pytest.approx(1 / 5), "exact_match_vs_fp32": 0.5}
    assert task.primary_metric(False) == "cer_vs_fp32"
    ev = task.evidence(cand, split, fp32)
    assert ev.ids == ("image/0", "image/1")  # unnamed images: <dataset>/<index>
    assert task.resampled_quality(ev, np.ones((1, 2)))[0] == pytest.approx(1 / 5)


def test_the_gallery_marks_the_characters_a_candidate_reads_differently() -> None:
    from PIL import Image

    from workloads.tasks.text_gallery import draw_lines, html_diff, marked

    assert marked("Total 12", "Tota1 12x") == (
        [False] * 4 + [True] + [False] * 3,
        [False] * 4 + [True] + [False] * 3 + [True],
    )
    assert html_diff("a<b", "a<c") == ("a&lt;<mark>b</mark>", "a&lt;<mark>c</mark>")
    line = Image.new("RGB", (60, 20), "white")
    drawn = draw_lines([(line, "abc", "abd"), (np.zeros((10, 30, 3), np.uint8), "x", "x")])
    assert drawn.width >= 60 and drawn.height > 20 + 10
    pixels = np.asarray(drawn)
    assert ((pixels[..., 0] > 150) & (pixels[..., 1] < 80)).any()  # something drawn in red


def test_release_kpis_read_cer_as_an_error_rate() -> None:
    from workloads.kpis.compute import robustness, slice_quality

    task = TextRecognition(charset=CHARSET)
    truth = ("abcd", "abcd", "efgh", "efgh")
    read = ["abcd", "abcd", "efgh", "eff"]  # slice "b" has CER 2/8
    preds = task.decode([one_hot_columns(read, task.table, 12)], [{}] * 4)
    split = Split(np.zeros((4, 1), np.float32), truth=truth)
    slices = {"a": np.array([0, 1]), "b": np.array([2, 3])}
    data = WorkloadData(None, split, split, 0, (1,), True, slices=slices)
    got = slice_quality(task, preds, split, data, "cer")
    assert got == {"slice/a": 0.0, "slice/b": 0.25, "worst_slice": 0.25, "slice_gap": 0.25}
    corrupted = {("blur", 1): split}
    worse = task.decode([one_hot_columns(["abc", "abd", "efgh", "eff"], task.table, 12)], [{}] * 4)
    data = WorkloadData(None, split, split, 0, (1,), True, corrupted=corrupted)
    got = robustness(task, data, None, 0.125, "cer", lambda _: worse)
    # CER 0.125 clean, 0.25 corrupted: 0.75 / 0.875 of the clean character accuracy kept
    assert got == {"robust/blur/1": 0.25, "robustness": pytest.approx(0.75 / 0.875)}
