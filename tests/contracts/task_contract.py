"""The checks every task must pass, written once: a task's tests subclass :class:`TaskContract`
(as optuna's storages subclass ``StorageTestCase``) and provide two fixtures, so a new task
(OCR, keypoints) gets these checks for free::

    class TestDetectionContract(TaskContract):
        @pytest.fixture
        def task(self) -> Task: ...            # a configured task
        @pytest.fixture
        def case(self) -> TaskCase: ...        # raw outputs as its models give them, and a split

What is checked: the registry and the job-file round trip (:meth:`Task.from_section`), metric
names (the primary one is among them, every name a trial can record is known to the spec
checks), decode → collect → quality, quality of a subset through :meth:`Task.select` equal to
scoring those samples alone (how slices are scored), fidelity of a candidate identical to fp32
at its best value, ``check_outputs`` accepting what ``decode`` accepts, pickling (tasks travel
to Ray workers), and every ability flag agreeing with the mix-in that implements it. A task with
per-image evidence (:class:`~workloads.evidence.PerImage`) keys it by the split's image ids, and
its resampled quality with a row of ones is exactly its primary metric, with a row of zeros and
ones that of the subset.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from farm._validate import Fields
from workloads.data import Split, WorkloadData
from workloads.evidence import PerImage
from workloads.tasks import (
    TASKS,
    Calibrated,
    FineTuning,
    ModelFacts,
    OperatingPoint,
    PostProcessing,
    Task,
    known_metrics,
    make_task,
)


@dataclass(frozen=True)
class TaskCase:
    """Raw outputs of a model in the task's convention, batch by batch, and what they are judged
    on: ``split`` (its samples in batch order) within ``data``."""

    #: Per batch, the model's outputs (one array per output).
    batches: list[list[np.ndarray]]
    #: Per batch, one info per real image (what preprocessing did to it).
    infos: list[list[dict[str, Any] | None]]
    split: Split
    data: WorkloadData
    #: The ``[workload]`` table (and model facts) that configure the fixture's task.
    section: dict[str, Any] = field(default_factory=dict)
    facts: ModelFacts = field(default_factory=ModelFacts)


class TaskContract:
    """Subclass it, with the fixtures ``task`` and ``case``."""

    @pytest.fixture
    def task(self) -> Task:
        raise NotImplementedError("a TaskContract subclass provides the `task` fixture")

    @pytest.fixture
    def case(self) -> TaskCase:
        raise NotImplementedError("a TaskContract subclass provides the `case` fixture")

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def predictions(task: Task, case: TaskCase) -> Any:
        decoded: list[Any] = []
        for outputs, infos in zip(case.batches, case.infos, strict=True):
            decoded.extend(task.decode(outputs, infos))
        return task.collect(decoded)

    @staticmethod
    def assert_same_metrics(a: dict[str, float], b: dict[str, float]) -> None:
        assert set(a) == set(b)
        for k in a:
            assert a[k] == pytest.approx(b[k], abs=1e-9), k

    # -- the registry and the job file -------------------------------------------------------
    def test_is_registered_under_its_name(self, task: Task) -> None:
        assert TASKS[task.name] is type(task)

    def test_the_job_file_section_configures_this_task(self, task: Task, case: TaskCase) -> None:
        section = {"task": task.name, **case.section}
        made = make_task(task.name, Fields(section, "job.toml", "workload"), case.facts)
        assert made == task

    # -- metric names --------------------------------------------------------------------------
    def test_the_primary_metric_is_one_of_its_metrics(self, task: Task) -> None:
        for has_labels in (True, False):
            names = task.metric_names(has_labels)
            assert task.primary_metric(has_labels) in names
            assert len(set(names)) == len(names)
        assert task.lower_is_better <= set(task.metric_names(True))

    def test_the_spec_checks_know_every_metric_it_records(self, task: Task) -> None:
        names, prefixes = known_metrics(task.name)
        assert set(task.metric_names(True)) <= names
        assert set(task.per_class_prefixes) <= prefixes

    # -- decode, collect, quality --------------------------------------------------------------
    def test_quality_reports_known_finite_metrics(self, task: Task, case: TaskCase) -> None:
        preds = self.predictions(task, case)
        got = task.quality(preds, case.split, preds, case.data)
        has_labels = case.data.has_labels
        assert task.primary_metric(has_labels) in got
        allowed = set(task.metric_names(has_labels))
        for name, value in got.items():
            per_class = any(name.startswith(p) for p in task.per_class_prefixes)
            assert name in allowed or per_class, name
            assert isinstance(value, float) and math.isfinite(value), (name, value)

    def test_a_candidate_identical_to_fp32_has_perfect_fidelity(
        self, task: Task, case: TaskCase
    ) -> None:
        preds = self.predictions(task, case)
        got = task.quality(preds, case.split, preds, case.data)
        for name in task.fidelity_metrics:
            best = 0.0 if name in task.lower_is_better else 1.0
            assert got[name] == pytest.approx(best), name

    def test_a_subset_through_select_scores_as_those_samples_alone(
        self, task: Task, case: TaskCase
    ) -> None:
        preds = self.predictions(task, case)
        n = len(case.split)
        everything = task.select(preds, np.arange(n))
        self.assert_same_metrics(
            task.quality(everything, case.split, everything, case.data),
            task.quality(preds, case.split, preds, case.data),
        )
        index = np.arange(0, n, 2)
        decoded: list[Any] = []
        for outputs, infos in zip(case.batches, case.infos, strict=True):
            decoded.extend(task.decode(outputs, infos))
        alone = task.collect([decoded[i] for i in index])
        subset = task.select(preds, index)
        split = case.split.subset(index)
        self.assert_same_metrics(
            task.quality(subset, split, subset, case.data),
            task.quality(alone, split, alone, case.data),
        )

    def test_check_outputs_accepts_what_decode_accepts(self, task: Task, case: TaskCase) -> None:
        for outputs in case.batches:
            task.check_outputs(outputs, "the model", case.data)

    def test_check_outputs_names_the_model_when_it_refuses(self, task: Task) -> None:
        with pytest.raises(ValueError, match="the model"):
            task.check_outputs([np.zeros((), dtype=np.float32)], "the model", None)

    # -- travel and settings -------------------------------------------------------------------
    def test_pickles_to_an_equal_task_that_decodes_the_same(
        self, task: Task, case: TaskCase
    ) -> None:
        again = pickle.loads(pickle.dumps(task))
        assert again == task and hash(again) == hash(task)
        self.assert_same_metrics(
            again.quality(self.predictions(again, case), case.split, None, case.data),
            task.quality(self.predictions(task, case), case.split, None, case.data),
        )

    def test_params_are_json(self, task: Task) -> None:
        assert json.loads(json.dumps(task.params())) == task.params()

    # -- abilities: each flag agrees with the mix-in that implements it ------------------------
    def test_post_processing_flag(self, task: Task) -> None:
        assert task.has_postprocess == isinstance(task, PostProcessing)
        if task.has_postprocess:
            off = task.with_postprocess_timing(False)
            assert (
                not off.times_postprocess and task.with_postprocess_timing(True).times_postprocess
            )
            assert type(off) is type(task)
        else:
            assert not task.times_postprocess
            with pytest.raises(ValueError, match="no post-processing"):
                task.with_postprocess_timing(True)

    def test_calibration_flag(self, task: Task, case: TaskCase) -> None:
        assert task.has_calibration == isinstance(task, Calibrated)
        if isinstance(task, Calibrated) and case.data.has_labels:
            preds = self.predictions(task, case)
            got = task.calibration(preds, case.split, case.data)
            assert got and all(math.isfinite(v) for v in got.values())

    def test_operating_point_flag(self, task: Task, case: TaskCase) -> None:
        assert task.supports_operating_point == isinstance(task, OperatingPoint)
        if isinstance(task, OperatingPoint):
            scores = task.positive_scores(self.predictions(task, case), (0,))
            assert scores.shape == (len(case.split),)

    def test_fine_tuning_flag(self, task: Task, case: TaskCase) -> None:
        import torch

        assert task.can_finetune == isinstance(task, FineTuning)
        if isinstance(task, FineTuning):
            targets = task.finetune_targets(case.split)
            outputs = torch.from_numpy(np.asarray(self.predictions(task, case)))
            loss = task.finetune_loss()(outputs, torch.from_numpy(np.asarray(targets)))
            assert loss.ndim == 0 and math.isfinite(float(loss))

    # -- per-image evidence --------------------------------------------------------------------
    def test_evidence_flag(self, task: Task) -> None:
        assert task.has_evidence == isinstance(task, PerImage)

    def test_a_row_of_ones_resamples_to_the_primary_metric(
        self, task: Task, case: TaskCase
    ) -> None:
        if not isinstance(task, PerImage):
            pytest.skip(f"{task.name} keeps no per-image evidence")
        preds = self.predictions(task, case)
        primary = task.primary_metric(case.data.has_labels)
        ev = task.evidence(preds, case.split, preds, case.data)
        assert ev.ids == case.split.image_ids() and len(ev) == len(case.split)
        n = len(case.split)
        picked = np.arange(n) % 2 == 0
        got = task.resampled_quality(ev, np.stack([np.ones(n), picked.astype(float)]))
        whole = task.quality(preds, case.split, preds, case.data)[primary]
        assert got[0] == pytest.approx(whole, abs=1e-12)
        index = np.flatnonzero(picked)
        subset = task.select(preds, index)
        alone = task.quality(subset, case.split.subset(index), subset, case.data)[primary]
        assert got[1] == pytest.approx(alone, abs=1e-12)
