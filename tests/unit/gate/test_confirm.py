"""The gate's confirmation, on numbers: the statistics that decide a re-measured comparison,
which comparisons are re-measured, and how a trial's artifact is found (or why not).

The confirmation itself, on real jobs, is in tests/cli/test_gate_confirmation.py; the store-only
fallback and the choice of configurations in tests/cli/test_gate.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.factories import trial

from farm.errors import CannotConfirm
from farm.gate.confirm import find_artifact
from farm.gate.decision import (
    DECIDED_BY_CAP,
    DECIDED_BY_INTERVAL,
    decide,
    median_interval,
    wants_confirmation,
)
from farm.release.significance import compare, min_rounds
from farm.store.db import Store

# -- the statistics ------------------------------------------------------------------------------


def test_min_rounds_is_the_fewest_with_an_interval_of_the_median() -> None:
    assert min_rounds(0.01) == 8  # 2 * 0.5**8 = 0.0078 <= 0.01 < 2 * 0.5**7
    assert min_rounds(0.05) == 6
    assert median_interval(list(range(7)), 0.01) == (-np.inf, np.inf)
    assert median_interval([5, 1, 7, 3, 2, 8, 4, 6], 0.01) == (1, 8)  # the range
    # n = 20, alpha = 0.05: P[Bin(20, .5) <= 5] = 0.021 <= 0.025 < P[<= 6]: ranks 6 and 15.
    assert median_interval(list(range(20)), 0.05) == (5, 14)


def test_median_interval_covers_the_median_as_promised() -> None:
    rng = np.random.default_rng(0)
    misses = sum(
        not (lo <= 0.0 <= hi)
        for lo, hi in (median_interval(list(rng.standard_t(2, 15)), 0.05) for _ in range(2000))
    )
    assert misses / 2000 <= 0.05


def test_decide_confirms_clears_waits_and_decides_at_the_cap() -> None:
    same = [1.0, 0.99, 1.01, 1.02, 0.98, 1.0, 1.01, 0.99]
    slower = [1.2, 1.18, 1.22, 1.19, 1.21, 1.2, 1.17, 1.23]
    assert decide(same[:7], 0.05, 0.01, 60) is None  # too few rounds for an interval
    v = decide(same, 0.05, 0.01, 60)
    assert v is not None and not v.regression and v.decided_by == DECIDED_BY_INTERVAL
    v = decide(slower, 0.05, 0.01, 60)
    assert v is not None and v.regression and v.ratio == pytest.approx(1.2, abs=0.01)
    # Mode switches of ±40 % around +6 %: the interval straddles 1.05, so more rounds are
    # needed; at the cap the median decides (and says so).
    noisy = [1.06, 1.5, 0.7, 1.07, 1.05, 1.4, 0.75, 1.06]
    assert decide(noisy, 0.05, 0.01, 60) is None
    v = decide(noisy, 0.05, 0.01, 8)
    assert v is not None and v.regression and v.decided_by == DECIDED_BY_CAP


def test_which_comparisons_are_re_measured() -> None:
    rng = np.random.default_rng(1)
    base = rng.lognormal(0, 0.05, 300)

    def stored(scale: float):  # type: ignore[no-untyped-def]
        return compare(base, rng.lognormal(np.log(scale), 0.05, 300), 0.05, 0.01)

    assert wants_confirmation(stored(1.3), drift=0.5)  # the store's regression
    assert wants_confirmation(stored(0.7), drift=0.5)  # could hide one behind 50 % drift
    assert not wants_confirmation(stored(0.4), drift=0.5)  # no drift makes this a regression
    assert not wants_confirmation(stored(1.02), drift=0.0)
    assert wants_confirmation(stored(1.3), drift=0.0)


def test_find_artifact_checks_the_stored_hash(tmp_path: Path) -> None:
    from farm.artifact import Artifact
    from farm.store.artifacts import ArtifactCache

    art = Artifact("onnx", {"model.onnx": b"bytes"}, {"input_shape": [3, 8, 8]})
    ArtifactCache(tmp_path / "a").save("k1", art)
    built = trial(1, build_key="k1", artifact_hash=art.content_hash)
    assert find_artifact(built, [tmp_path / "nowhere", tmp_path / "a"]) == art
    with pytest.raises(CannotConfirm, match="does not match the stored hash"):
        find_artifact(built.replace(artifact_hash="0" * 16), [tmp_path / "a"])
    with pytest.raises(CannotConfirm, match=r"artifact k2 \(hash .*\) not found"):
        find_artifact(built.replace(build_key="k2"), [tmp_path / "a"])
    with pytest.raises(CannotConfirm, match="artifact not recorded"):
        find_artifact(trial(0), [tmp_path / "a"])


def test_a_store_before_migration_3_has_no_confirmations(tmp_path: Path) -> None:
    import duckdb

    from farm.store.schema import MIGRATIONS

    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version in (1, 2):
        con.execute(MIGRATIONS[version - 1])
        con.execute("INSERT INTO schema_version VALUES (?)", [version])
    con.close()
    store = Store(db)
    assert store.confirmations("any") == []
    store.set_job_status("nothing", "completed")  # any write migrates to the newest version
    assert store.query("SELECT max(version) AS v FROM schema_version")[0]["v"] == len(MIGRATIONS)
    assert store.confirmations("any") == []
