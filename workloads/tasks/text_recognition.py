"""Text recognition: a CTC recogniser's per-column scores → strings, judged by CER.

The model takes text-line images ``[N, 3, H, W]`` and returns ``[N, T, C]``: for each of T
columns, scores over C classes (``outputs = "ctc_probs"``, already softmax-ed as PaddleOCR
exports it, or ``"ctc_logits"``; greedy decoding is the same for both, only the confidence
differs). The classes are the CTC blank plus a character set, as PaddleOCR lays them out by
default: **blank at index 0, then the dictionary's characters (one per line), then a space**
(``use_space_char``). The character set is the ONNX model's metadata ``character`` (where
PaddleOCR's exporter stores it) unless ``[workload] dictionary`` names a file; ``blank_index``
moves the blank (``-1``: last, as some other exporters put it).

Greedy decoding (PaddleOCR's ``CTCLabelDecode``): the best class of each column, repeats merged,
blanks dropped. A line's confidence is the mean best probability of the columns kept.

Metrics (:mod:`workloads.tasks._text_metrics`, on strings stripped of surrounding whitespace and
case folded when ``case_sensitive = false``): ``cer`` (primary, lower is better), ``wer``,
``exact_match``, ``one_minus_ned``; without ground truth, fidelity to the fp32 model's strings:
``cer_vs_fp32`` (the candidate's strings scored against fp32's) and ``exact_match_vs_fp32``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from workloads.evidence import Evidence, PerImage
from workloads.tasks import _text_metrics as tm
from workloads.tasks.base import ModelFacts, PostProcessing, Task

if TYPE_CHECKING:
    from farm._validate import Fields
    from workloads.data import Split, WorkloadData

OUTPUT_CONVENTIONS = ("ctc_probs", "ctc_logits")
#: ``channels``: the colour order the model takes (PaddleOCR's tools feed BGR, as OpenCV reads).
CHANNEL_ORDERS = ("rgb", "bgr")
#: The ONNX metadata key PaddleOCR's exporter stores the character list under.
METADATA_KEY = "character"


@dataclass(frozen=True)
class Line:
    """One decoded text line: the string and its confidence (mean best probability)."""

    text: str
    confidence: float


@dataclass(frozen=True)
class TextRecognition(PostProcessing, PerImage, Task):
    name: ClassVar[str] = "text_recognition"
    fields: ClassVar[frozenset[str]] = frozenset(
        {"outputs", "dictionary", "blank_index", "use_space_char", "case_sensitive", "channels"}
    )
    labelled_metrics: ClassVar[tuple[str, ...]] = ("cer", "wer", "exact_match", "one_minus_ned")
    fidelity_metrics: ClassVar[tuple[str, ...]] = ("cer_vs_fp32", "exact_match_vs_fp32")
    lower_is_better: ClassVar[frozenset[str]] = frozenset({"cer", "wer", "cer_vs_fp32"})
    truth: ClassVar[tuple[str, ...]] = ("labels",)
    #: PaddleOCR's recognisers normalise with mean = std = 0.5: ``(x / 255 - 0.5) / 0.5``.
    normalization: ClassVar[tuple[tuple[float, float, float], tuple[float, float, float]]] = (
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
    )
    #: What the label files hold for this task (``workloads.datasets.ocr``): one string per image.
    label_kind: ClassVar[str] = "text"
    #: Any change of a line's edit count flips it (a line's score is 1 - its own CER).
    flip_threshold: ClassVar[float] = 1e-9

    #: The character set, without the blank and the space (dictionary lines in order).
    charset: tuple[str, ...] = ()
    outputs: str = "ctc_probs"
    blank_index: int = 0
    use_space_char: bool = True
    case_sensitive: bool = True
    #: The colour order the model takes (the data loader feeds it; recorded in params).
    channels: str = "rgb"

    def __post_init__(self) -> None:
        if self.outputs not in OUTPUT_CONVENTIONS:
            raise ValueError(
                f"`outputs` must be one of {list(OUTPUT_CONVENTIONS)}, got {self.outputs!r}"
            )

    @classmethod
    def from_section(cls, section: Fields, *, facts: ModelFacts) -> TextRecognition:
        """``dictionary`` (a file, one character per line; default: the ONNX metadata
        ``character``), ``blank_index`` (0), ``use_space_char`` (true), ``case_sensitive``
        (true), ``outputs`` (``ctc_probs``), ``channels`` (``rgb``; ``bgr`` as PaddleOCR's
        tools feed images)."""
        outputs = section.string("outputs", "ctc_probs", choices=OUTPUT_CONVENTIONS)
        charset = _charset(section, facts)
        use_space = section.flag("use_space_char", True)
        classes = len(charset) + int(use_space) + 1
        blank = section.integer(
            "blank_index",
            0,
            low=-classes,
            high=classes - 1,
            expected=f"an index into the {classes} classes (0: first, -1: last)",
        )
        return cls(
            charset=charset,
            outputs=outputs,
            blank_index=blank % classes,
            use_space_char=use_space,
            case_sensitive=section.flag("case_sensitive", True),
            channels=section.string("channels", "rgb", choices=CHANNEL_ORDERS),
        )

    # -- the class table -----------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """C: the blank, the characters and the space."""
        return len(self.charset) + int(self.use_space_char) + 1

    @property
    def table(self) -> tuple[str, ...]:
        """Class index -> character (the blank as an empty string)."""
        chars = [*self.charset, *([" "] if self.use_space_char else [])]
        chars.insert(self.blank_index, "")
        return tuple(chars)

    @property
    def first_output_only(self) -> bool:
        return True

    def params(self) -> dict[str, Any]:
        """The character set's digest (a dictionary file's content is not in the job file),
        and the settings that differ from PaddleOCR's defaults."""
        out: dict[str, Any] = {
            "charset_sha256": hashlib.sha256("\n".join(self.charset).encode()).hexdigest()[:16]
        }
        defaults = {
            "blank_index": 0,
            "use_space_char": True,
            "case_sensitive": True,
            "channels": "rgb",
        }
        out.update({k: getattr(self, k) for k, v in defaults.items() if getattr(self, k) != v})
        return out

    # -- decoding ------------------------------------------------------------------------------
    def decode(
        self, outputs: Sequence[np.ndarray], infos: Sequence[dict[str, Any] | None]
    ) -> list[Line]:
        scores = np.asarray(outputs[0])[: len(infos)]
        return greedy_decode(scores, self.table, self.blank_index, self.outputs == "ctc_logits")

    def collect(self, predictions: list[Any]) -> list[Line]:
        return list(predictions)

    def check_output_dims(
        self, outputs: Mapping[str, tuple[int | str, ...]], batch: int | str
    ) -> None:
        dims = next(iter(outputs.values()), ())
        elsewhere = isinstance(batch, str) and batch != "?" and batch in dims[1:]
        fixed = bool(dims) and isinstance(dims[0], int) and dims[0] != batch
        if len(dims) != 3 or elsewhere or fixed:
            raise ValueError(
                f"a CTC recogniser's first output is [N, T, C] (batch first), got dims "
                f"{list(dims)} for an input batch of {batch!r} (a [T, N, C] output: export it "
                "batch-first, or transpose it in the graph)"
            )
        if isinstance(dims[-1], int) and dims[-1] != self.num_classes:
            raise ValueError(self._classes_mismatch(dims[-1]))

    def check_outputs(
        self, outputs: Sequence[np.ndarray], where: str, data: WorkloadData | None = None
    ) -> None:
        first = np.asarray(outputs[0])
        if first.ndim != 3:
            raise ValueError(
                f"{where}: a CTC recogniser's first output must be [N, T, C] scores, got shape "
                f"{first.shape}"
            )
        if first.shape[-1] != self.num_classes:
            raise ValueError(f"{where}: {self._classes_mismatch(first.shape[-1])}")

    def _classes_mismatch(self, got: int) -> str:
        space = " + 1 space" if self.use_space_char else ""
        return (
            f"the output has {got} classes per column, but the character set gives "
            f"{self.num_classes} (1 blank + {len(self.charset)} characters{space}); check "
            "`dictionary` and `use_space_char`"
        )

    # -- metrics -------------------------------------------------------------------------------
    def texts(self, predictions: Sequence[Line]) -> list[str]:
        """The decoded strings as they are scored (normalised)."""
        return [tm.normalize(p.text, self.case_sensitive) for p in predictions]

    def references(self, split: Split) -> list[str] | None:
        """The ground-truth strings of ``split`` as they are scored, None without labels."""
        if split.truth is None:
            return None
        return [tm.normalize(str(t), self.case_sensitive) for t in split.truth]

    def quality(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData
    ) -> dict[str, float]:
        hyps = self.texts(predictions)
        out: dict[str, float] = {}
        refs = self.references(split)
        if refs is not None:
            out.update(tm.text_metrics(hyps, refs))
        if reference is not None:
            out.update(tm.text_metrics(hyps, self.texts(reference), prefix="_vs_fp32"))
        return out

    # -- per-image evidence --------------------------------------------------------------------
    def evidence(
        self, predictions: Any, split: Split, reference: Any, data: WorkloadData | None = None
    ) -> Evidence:
        """Per line: its edit distance and reference length (their sums give CER on any
        resample), ``1 - CER`` of the line as its score, the string read, and whether it was
        read exactly. Against the fp32 model's strings when the split has no labels."""
        hyps = self.texts(predictions)
        refs = self.references(split)
        if refs is None:
            refs = self.texts(reference)
        edits = tm.char_edits(hyps, refs)
        lengths = np.asarray([len(r) for r in refs], dtype=np.int64)
        ids = split.image_ids()
        return Evidence(
            ids=tuple(ids),
            score=1.0 - edits / np.maximum(lengths, 1),
            predicted=tuple(p.text for p in predictions),
            confidence=np.asarray([p.confidence for p in predictions], dtype=np.float64),
            correct=edits == 0,
            arrays={"edits": edits, "ref_len": lengths},
        )

    def resampled_quality(self, evidence: Evidence, weights: np.ndarray) -> np.ndarray:
        return tm.resampled_rate(evidence.arrays["edits"], evidence.arrays["ref_len"], weights)


def greedy_decode(
    scores: np.ndarray, table: Sequence[str], blank: int, logits: bool = False
) -> list[Line]:
    """Greedy CTC decoding of ``scores`` [N, T, C]: per column the best class, repeats merged,
    blanks dropped; the confidence is the mean best probability of the columns kept (softmax
    taken first when the scores are ``logits``), 0 for an empty line."""
    scores = np.asarray(scores, dtype=np.float32)
    best = scores.argmax(axis=2)
    top = scores.max(axis=2)
    if logits:  # the best class's softmax probability: 1 / Σ exp(s - max)
        top = 1.0 / np.exp(scores - top[..., None]).sum(axis=2)
    lines = []
    for idx, prob in zip(best, top, strict=True):
        keep = np.ones(len(idx), dtype=bool)
        keep[1:] = idx[1:] != idx[:-1]
        keep &= idx != blank
        text = "".join(table[i] for i in idx[keep])
        conf = float(prob[keep].mean()) if keep.any() else 0.0
        lines.append(Line(text, conf))
    return lines


def _charset(section: Fields, facts: ModelFacts) -> tuple[str, ...]:
    """The dictionary file's lines, else the model's metadata ``character``."""
    path = section.path("dictionary", facts.base_dir or Path.cwd(), None, kind="file")
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise section.error("dictionary", "a UTF-8 text file", f"{path}: {exc}") from None
        chars = tuple(line.rstrip("\r\n") for line in text.split("\n"))
        chars = chars[:-1] if chars and chars[-1] == "" else chars
    elif METADATA_KEY in facts.metadata:
        chars = tuple(facts.metadata[METADATA_KEY].splitlines())
    else:
        raise section.error(
            "dictionary",
            "a dictionary file, one character per line (required: the model's ONNX metadata "
            f"has no `{METADATA_KEY}` list)",
        )
    if not chars:
        raise section.error("dictionary", "at least one character", str(path))
    return chars
