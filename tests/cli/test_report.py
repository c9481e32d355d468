"""`farm report`: the self-contained HTML page, checked in a real headless Chromium."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support.browser import chromium, gallery_page, run_chromium, screenshot_is_drawn
from support.jobs import SmallJob

from farm.cli import main

#: Injected first in <head>: record console errors and uncaught exceptions.
CATCH = """<script>window.__errors=[];
(function(){const e=console.error.bind(console);console.error=function(...a){
window.__errors.push(a.map(String).join(' '));e(...a);};})();
window.addEventListener('error',ev=>window.__errors.push('error: '+ev.message));
window.addEventListener('unhandledrejection',ev=>window.__errors.push('rejection: '+ev.reason));
</script>"""
#: Injected last in <body>: after load, write what rendered into the DOM for --dump-dom.
PROBE = """<script>window.addEventListener('load',()=>setTimeout(()=>{const out={};
document.querySelectorAll('.js-plotly-plot').forEach(gd=>{out[gd.id]={
data:(gd._fullData||[]).length,
nonempty:gd.data.filter(t=>(t.x||[]).length>0).length,
drawn:gd.querySelectorAll('.scatterlayer .trace, .barlayer .trace').length,
svg:gd.querySelectorAll('svg.main-svg').length};});
const pre=document.createElement('pre');pre.id='probe';
pre.textContent=JSON.stringify({errors:window.__errors,figures:out,
online:[...document.querySelectorAll('script[src],link[href]')].map(e=>e.src||e.href)});
document.body.appendChild(pre);},300));</script>"""


@pytest.fixture(scope="module")
def report(small_job: SmallJob, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    budget = folder / "b.toml"
    budget.write_text("[all]\nmax_p95_ms = 50\nmax_accuracy_drop = 0.02\n")
    out = folder / "report.html"
    args = ["report", small_job.job_id, "--db", str(small_job.db), "-o", str(out)]
    assert main([*args, "--budget", str(budget)]) == 0
    return out


def test_report_is_one_self_contained_file(report: Path, small_job: SmallJob) -> None:
    text = report.read_text()
    # plotly.js is inlined (its bundle mentions cdn.plot.ly in strings; nothing loads from it).
    assert "<script src=" not in text and "<link " not in text
    assert len(re.findall(r'<div id="fig-', text)) == 3  # importances need more trials
    assert small_job.job_id in text
    for needle in (
        "Recommended configuration",
        "Overall:",
        "p95 speed-up vs baseline",
        "measurement contract",
        "inverted_cdf",
        "cpu_flags",
        "Which knobs mattered",
    ):
        assert needle in text, needle


def test_report_opens_on_what_would_ship_with_its_paired_change(
    report: Path, small_job: SmallJob
) -> None:
    from farm.store.db import Store

    text = report.read_text()
    first = text.index("<h2>")
    assert text[first:].startswith("<h2>What would ship</h2>")
    decision = text[first : text.index("<h2>", first + 1)]
    assert 'id="fig-accuracy"' in decision  # the fronts' chart on the first screen
    store = Store(small_job.db)
    compared = store.comparisons(small_job.job_id)
    picks = re.findall(r"<td>#(\d+) ", decision)
    targets = sorted({t.target for t in store.trials(small_job.job_id)})
    assert len(picks) == len(targets)
    for target, number in zip(targets, picks, strict=True):
        if (target, int(number)) in compared:
            c = compared[(target, int(number))][1]
            assert f"{c.broken} broken, {c.fixed} fixed" in decision
            assert c.verdict in decision


def test_report_renders_in_headless_chromium(report: Path, small_job: SmallJob) -> None:
    chromium()
    from farm.store.db import Store

    n_targets = len({t.target for t in Store(small_job.db).trials(small_job.job_id)})
    page = report.read_text()
    probe = report.with_name("probe.html")
    probe.write_text(
        page.replace("<head>", "<head>" + CATCH, 1).replace("</body>", PROBE + "</body>", 1)
    )
    done = run_chromium("--virtual-time-budget=20000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe in the DOM; chromium said: {done.stderr[-2000:]}"
    result = json.loads(html.unescape(found.group(1)))
    assert result["errors"] == []
    assert result["online"] == []  # nothing fetched from the network
    expected = {
        "fig-accuracy": 4 * n_targets,
        "fig-cost": n_targets + 1,
        "fig-throughput": n_targets,
    }
    for fig, n in expected.items():
        got = result["figures"][fig]
        # Every trace is in the figure; every non-empty one was drawn (plotly draws no group
        # for an empty trace, e.g. "infeasible" when no trial was).
        assert got["data"] == n and got["svg"] >= 1, (fig, got)
        assert got["drawn"] == got["nonempty"] >= n_targets, (fig, got)

    shot = report.with_name("shot.png")
    run_chromium(f"--screenshot={shot}", report.as_uri())
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=float)
    assert pixels.std() > 10  # not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # plots, not only text


def test_importances_rank_the_knob_that_drives_the_objective() -> None:
    from dashboards.importance import param_importances

    rng = np.random.default_rng(0)
    batch = rng.choice([1, 2, 4, 8], 60)
    threads = rng.choice([1, 2], 60)
    rows = pd.DataFrame(
        {
            "params": [
                json.dumps({"batch_size": int(b), "threads": int(t)})
                for b, t in zip(batch, threads, strict=True)
            ],
            "quality": 0.97 - 0.001 * threads + rng.normal(0, 1e-5, 60),
            "latency_p95_ms": batch * 1.0 + rng.normal(0, 0.01, 60),
            "cost_per_1k_usd": 1e-5 / batch,
        }
    )
    imp = param_importances(rows)
    assert isinstance(imp, dict)
    assert imp["p95 latency"]["batch_size"] > 0.9
    assert imp["quality"]["threads"] > 0.9
    assert "need at least" in param_importances(rows.head(2))


def test_unknown_job_and_bad_budget_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from support.factories import ROWS, make_store

    make_store(tmp_path / "f.duckdb", "j1", ROWS)
    db = str(tmp_path / "f.duckdb")
    assert main(["report", "nope", "--db", db, "-o", str(tmp_path / "r.html")]) == 2
    assert "no job matches 'nope'" in capsys.readouterr().err
    bad = tmp_path / "b.toml"
    bad.write_text("[all]\nmax_p95_ms = true\n")
    assert main(["report", "j1", "--db", db, "--budget", str(bad)]) == 2
    assert "field `all.max_p95_ms`" in capsys.readouterr().err
    assert main(["report", "j1", "--db", db, "-o", str(tmp_path / "r.html")]) == 0


def test_the_report_embeds_the_images_each_shipped_candidate_broke_and_fixed(
    report: Path, small_job: SmallJob
) -> None:
    from dashboards.gallery import LIMIT
    from farm.store.db import Store

    text = report.read_text()
    section = text[text.index("<h2>Images the candidates") : text.index("<h2>Recommended")]
    store = Store(small_job.db)
    compared = store.comparisons(small_job.job_id)
    shipped = re.findall(r"<td>([^<]+)</td><td>#(\d+) ", text[: text.index("<h2>Images")])
    expected = sum(
        min(c.broken, LIMIT) + min(c.fixed, LIMIT)
        for (_, c) in (compared[(t, int(n))] for t, n in shipped if (t, int(n)) in compared)
    )
    assert section.count("<img src='data:image/png;base64,") == expected


def test_farm_gallery_draws_a_digits_candidates_changes_seen_in_chromium(
    small_job: SmallJob, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chromium()
    from dashboards.gallery import Tile, html_section
    from farm.store.db import Store

    compared = Store(small_job.db).comparisons(small_job.job_id)
    (target, number), (_, c) = max(
        compared.items(), key=lambda kv: kv[1][1].broken + kv[1][1].fixed
    )
    assert c.broken + c.fixed > 0  # some int8 candidate changed an image
    args = ["gallery", small_job.job_id, "--db", str(small_job.db), "--trial", str(number)]
    assert main([*args, "-o", str(tmp_path / "out")]) == 0
    files = sorted((tmp_path / "out").glob(f"{target}-trial{number}-*.png"))
    assert len(files) == min(c.broken, 8) + min(c.fixed, 8)
    assert "wrote" in capsys.readouterr().out
    tiles = [
        Tile(target, number, f.stem, f.stem.split("-")[-2], 1.0, 0.0, f.read_bytes()) for f in files
    ]
    screenshot_is_drawn(gallery_page(tmp_path, html_section(tiles, [])))


def test_farm_gallery_of_an_unknown_job_or_an_uncompared_trial_exits_2_writing_nothing(
    small_job: SmallJob, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    db = ["--db", str(small_job.db), "-o", str(out)]
    assert main(["gallery", "nope", *db]) == 2
    assert "no job matches 'nope'" in capsys.readouterr().err
    assert main(["gallery", small_job.job_id, "--trial", "999", *db]) == 2
    assert "trial 999" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
