"""Job-file validation: every error names the file, the field and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.cli import main
from farm.errors import SpecError
from farm.spec.job import JobSpec, load_job

GOOD = """
name = "t"
targets = ["cpu-onnxruntime", "cpu-openvino"]
[workload]
name = "digits"
[search]
trials_per_target = 3
precision = ["fp32", "int8"]
batch_size = [1, 4]
threads = [1]
[constraints]
max_accuracy_drop = 0.02
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.toml"
    path.write_text(text)
    return path


def test_good_job_parses_and_round_trips(tmp_path: Path) -> None:
    spec = load_job(write(tmp_path, GOOD))
    assert spec.targets == ("cpu-onnxruntime", "cpu-openvino")
    assert spec.search.batch_size == (1, 4)
    assert spec.max_accuracy_drop == 0.02
    assert JobSpec.from_json(spec.to_json()) == spec
    assert spec.with_trials(7).search.trials_per_target == 7


def test_embedded_default_job_is_valid() -> None:
    spec = load_job(Path(__file__).parents[3] / "farm" / "jobs" / "digits.toml")
    assert set(spec.targets) == {"cpu-torch", "cpu-onnxruntime", "cpu-openvino"}


@pytest.mark.parametrize(
    ("edit", "field", "expected"),
    [
        (('name = "t"', 'name = "t"\ncolour = "red"'), "colour", "known fields"),
        (
            ("trials_per_target = 3", 'trials_per_target = "3"'),
            "search.trials_per_target",
            "positive integer",
        ),
        (
            ("trials_per_target = 3", "trials_per_target = 0"),
            "search.trials_per_target",
            "positive integer",
        ),
        (('"cpu-openvino"]', '"cpu-tpu"]'), "targets[1]", "one of"),
        (('precision = ["fp32", "int8"]', "precision = []"), "search.precision", "non-empty"),
        (('precision = ["fp32", "int8"]', 'precision = ["fp64"]'), "search.precision", "values"),
        (("batch_size = [1, 4]", "batch_size = [0]"), "search.batch_size", "positive"),
        (
            ("max_accuracy_drop = 0.02", "max_accuracy_drop = 2"),
            "constraints.max_accuracy_drop",
            "[0, 1]",
        ),
        (
            ("max_accuracy_drop = 0.02", "max_drop = 0.02"),
            "constraints.max_drop",
            "a metric this job records",
        ),
        (
            ("max_accuracy_drop = 0.02", "fastest = 1"),
            "constraints.fastest",
            "min_<metric>, max_<metric>",
        ),
        (('[workload]\nname = "digits"', ""), "workload", "required"),
        (
            ("trials_per_target = 3", 'trials_per_target = 3\nsampler = "grid"'),
            "search.sampler",
            "nsga2",
        ),
        (
            ("trials_per_target = 3", "trials_per_target = 3\nwarmup = 1"),
            "search.warmup",
            "known fields",
        ),
        (
            ("trials_per_target = 3", "trials_per_target = 3\ntime_budget_s = -5"),
            "search.time_budget_s",
            "positive number",
        ),
    ],
)
def test_bad_fields_are_named(
    tmp_path: Path, edit: tuple[str, str], field: str, expected: str
) -> None:
    old, new = edit
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(SpecError) as err:
        load_job(path)
    assert err.value.field == field
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_bad_measurement_table_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "[measurement]\nmin_samples = -1\n")
    with pytest.raises(SpecError) as err:
        load_job(path)
    assert err.value.field == "measurement"
    assert "min_samples" in str(err.value)


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="valid TOML"):
        load_job(write(tmp_path, "name = = 1"))
    with pytest.raises(SpecError, match="existing TOML"):
        load_job(tmp_path / "nope.toml")


def test_farm_run_bad_job_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD.replace('"cpu-openvino"]', '"cpu-tpu"]'))
    db = tmp_path / "farm.duckdb"
    assert main(["run", str(path), "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "targets[1]" in err and str(path) in err
    assert not db.exists()


def test_the_server_scenario_is_refused_in_jobs(tmp_path: Path) -> None:
    # Under Poisson arrivals throughput is the offered load, so cost would not rank candidates.
    path = write(tmp_path, GOOD + '[measurement]\nscenario = "server"\nqps = 50\n')
    with pytest.raises(SpecError) as err:
        load_job(path)
    assert err.value.field == "measurement.scenario"


@pytest.mark.parametrize("command", ["run", "resume"])
def test_trials_must_be_positive(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    with pytest.raises(SystemExit) as exc:
        main([command, str(path), "--trials", "0", "--db", str(tmp_path / "x.duckdb")])
    assert exc.value.code == 2
    assert "--trials" in capsys.readouterr().err
    assert not (tmp_path / "x.duckdb").exists()


def test_a_file_that_is_not_a_store_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "notes.duckdb"
    bogus.write_text("not a database")
    assert main(["jobs", "--db", str(bogus)]) == 2
    assert "not a farm store" in capsys.readouterr().err
    assert bogus.read_text() == "not a database"  # untouched
