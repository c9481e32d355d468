"""Generic: any outputs judged by their fidelity to the fp32 model's, and the task's contract."""

from __future__ import annotations

import numpy as np
import pytest
from contracts.task_contract import TaskCase, TaskContract

from workloads.data import Split, WorkloadData
from workloads.tasks import Generic, Task
from workloads.tasks.generic import output_fidelity


class TestGenericContract(TaskContract):
    @pytest.fixture
    def task(self) -> Task:
        return Generic()

    @pytest.fixture
    def case(self) -> TaskCase:
        rng = np.random.default_rng(0)
        features = rng.standard_normal((6, 5, 7)).astype(np.float32)
        embedding = rng.standard_normal((6, 16)).astype(np.float32)
        split = Split(np.zeros((6, 3, 8, 8), np.float32))
        data = WorkloadData(None, split, split, 0, (3, 8, 8), False)
        batches = [[features[:4], embedding[:4]], [features[4:], embedding[4:]]]
        return TaskCase(batches, [[None] * 4, [None] * 2], split, data)


def test_output_fidelity_metrics() -> None:
    rng = np.random.default_rng(0)
    ref = [rng.standard_normal((5, 7, 3)), rng.standard_normal((5, 4))]
    same = output_fidelity(ref, ref)
    assert same == {"output_cosine": 1.0, "output_rel_error": 0.0, "max_abs_output_diff": 0.0}
    doubled = output_fidelity([ref[0], 2 * ref[1]], ref)  # same direction, twice the size
    assert doubled["output_cosine"] == pytest.approx(1.0)
    assert doubled["output_rel_error"] == pytest.approx(1.0)
    flipped = output_fidelity([ref[0], -ref[1]], ref)  # the worst output decides
    assert flipped["output_cosine"] == pytest.approx(-1.0)
    zeros = [np.zeros((2, 3))]
    assert output_fidelity(zeros, zeros)["output_cosine"] == 1.0
    one_zero = output_fidelity([np.ones((2, 3))], zeros)
    assert one_zero["output_cosine"] == 0.0 and one_zero["output_rel_error"] == 1.0
    with pytest.raises(ValueError, match="output 0 has shape"):
        output_fidelity([np.ones((2, 3))], [np.ones((2, 4))])


def test_a_generic_task_keeps_fidelity_as_its_only_quality() -> None:
    task = Generic()
    assert task.primary_metric(True) == task.primary_metric(False) == "output_cosine"
    assert task.metric_names() == ("output_cosine", "output_rel_error", "max_abs_output_diff")


@pytest.mark.parametrize(
    ("dims", "ok"),
    [
        ({"a": ("N", 37), "b": ("N", 4, 4)}, True),
        ({"ctc": ("T", "N", 37)}, False),  # the batch is not first
        ({"fixed": (1, 37)}, False),  # a fixed first axis for a dynamic batch
        ({"scalar": ()}, False),
    ],
)
def test_output_dims_must_put_the_batch_first(dims: dict, ok: bool) -> None:
    if ok:
        Generic().check_output_dims(dims, "N")
    else:
        with pytest.raises(ValueError, match="batch-first"):
            Generic().check_output_dims(dims, "N")
