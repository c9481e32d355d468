"""The gate's verdict as text (the terminal), GitHub-flavoured markdown (a job summary or a PR
comment) and JUnit XML (CI test reports). Every confirmation shows its rounds; every verdict
that rests on the store alone says so.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from farm.gate.checks import BASIS_FALLBACK, Check, GateResult
from farm.gate.decision import STATISTIC, Confirmation

#: The kinds of check, in the order JUnit lists their suites.
KINDS = ("budget", "latency", "accuracy", "kpi")


def render_text(result: GateResult) -> str:
    lines = [f"farm gate: candidate {result.candidate}"]
    if result.baseline:
        lines.append(f"baseline {result.baseline}")
    for c in result.checks:
        lines.append(f"{'PASS' if c.passed else 'FAIL'}  {c.name}: {c.message}")
        if c.confirmation is not None:
            ratios = " ".join(f"{r.ratio - 1:+.1%}" for r in c.confirmation.rounds)
            lines.append(f"      per-round ratios ({STATISTIC}, in order): {ratios}")
    lines += [f"note: {n}" for n in result.notes]
    n_fail = len(result.failures)
    lines.append(
        "gate PASSED" if result.passed else f"gate FAILED: {n_fail} of {len(result.checks)} checks"
    )
    return "\n".join(lines)


def render_markdown(result: GateResult) -> str:
    """GitHub-flavoured markdown (for ``$GITHUB_STEP_SUMMARY`` or a PR comment)."""
    head = "✅ passed" if result.passed else f"❌ failed ({len(result.failures)} checks)"
    lines = [f"## farm gate: {head}", "", f"- candidate: `{result.candidate}`"]
    if result.baseline:
        lines.append(f"- baseline: `{result.baseline}`")
    lines += ["", "| | check | details |", "|---|---|---|"]
    ordered = sorted(result.checks, key=lambda c: c.passed)  # failures first
    for c in ordered:
        lines.append(f"| {'✅' if c.passed else '❌'} | {_md(c.name)} | {_md(c.message)} |")
    lines += _markdown_confirmations(result.checks)
    if result.notes:
        lines += ["", *[f"> {_md(n)}" for n in result.notes]]
    return "\n".join(lines) + "\n"


def _markdown_confirmations(checks: list[Check]) -> list[str]:
    """The latency confirmations (a summary row each, their rounds folded) and the verdicts
    that rest on the store alone."""
    confirmed = [c for c in checks if c.confirmation is not None]
    fallback = [c for c in checks if c.basis == BASIS_FALLBACK]
    if not confirmed and not fallback:
        return []
    lines = ["", "### Latency confirmation (both artifacts re-measured, interleaved)"]
    if confirmed:
        lines += [
            "",
            f"| | configuration | store alone | re-measured: median paired {STATISTIC} ratio "
            "| interval | rounds | node | time |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in confirmed:
            conf = c.confirmation
            assert conf is not None and conf.verdict is not None
            v = conf.verdict
            store = f"{'REGRESSION' if conf.store.regression else 'ok'} {conf.store.slowdown:+.1%}"
            lines.append(
                f"| {'✅' if c.passed else '❌'} | {_md(conf.label)} | {store} | "
                f"**{v.ratio - 1:+.1%}** ({'REGRESSION' if v.regression else 'ok'}; "
                f"by {v.decided_by}) | [{v.low - 1:+.1%}, {v.high - 1:+.1%}] | "
                f"{len(conf.rounds)} | {_md(conf.node_host)} | {conf.wall_s:.0f} s |"
            )
        for c in confirmed:
            conf = c.confirmation
            assert conf is not None
            lines += [
                "",
                f"<details><summary>rounds of {_md(conf.label)} (inputs: {_md(conf.inputs)})"
                "</summary>",
                "",
                f"| round | order | baseline {STATISTIC} ms | candidate {STATISTIC} ms | ratio | "
                "baseline p50 ms | candidate p50 ms |",
                "|---|---|---|---|---|---|---|",
            ]
            for i, r in enumerate(conf.rounds, 1):
                lines.append(
                    f"| {i} | {r.order} | {r.baseline_ms:.4g} | {r.candidate_ms:.4g} | "
                    f"{r.ratio - 1:+.1%} | {r.baseline_p50_ms:.4g} | {r.candidate_p50_ms:.4g} |"
                )
            lines += ["", "</details>"]
    for c in fallback:
        lines += ["", f"> ⚠️ **store only** for {_md(c.name)}: {_md(c.message)}"]
    return lines


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_junit(result: GateResult) -> str:
    """JUnit XML: one test suite per kind of check, one test case per check. A latency case
    carries how it was decided (property ``basis``) and, when re-measured, the confirmation's
    figures as properties and its rounds in ``system-out``."""
    root = ET.Element(
        "testsuites",
        name="farm gate",
        tests=str(len(result.checks)),
        failures=str(len(result.failures)),
    )
    for kind in KINDS:
        of_kind = [c for c in result.checks if c.kind == kind]
        if not of_kind:
            continue
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"farm gate: {kind}",
            tests=str(len(of_kind)),
            failures=str(sum(not c.passed for c in of_kind)),
        )
        for c in of_kind:
            case = ET.SubElement(
                suite, "testcase", classname=f"farm.gate.checks.{kind}", name=c.name
            )
            out = c.message
            if kind == "latency":
                props = ET.SubElement(case, "properties")
                for key, value in _junit_properties(c).items():
                    ET.SubElement(props, "property", name=key, value=value)
                if c.confirmation is not None:
                    out += "\n" + _rounds_text(c.confirmation)
            if not c.passed:
                failure = ET.SubElement(case, "failure", message=c.message, type=f"{kind}-failure")
                failure.text = c.message
            if c.passed or c.confirmation is not None:
                ET.SubElement(case, "system-out").text = out
    if result.notes:
        ET.SubElement(root, "system-out").text = "\n".join(result.notes)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _junit_properties(c: Check) -> dict[str, str]:
    props = {"basis": c.basis}
    conf = c.confirmation
    if conf is not None and conf.verdict is not None:
        v = conf.verdict
        props.update(
            {
                "confirmation.statistic": STATISTIC,
                "confirmation.rounds": str(len(conf.rounds)),
                "confirmation.ratio": f"{v.ratio:.4f}",
                "confirmation.ratio_low": f"{v.low:.4f}",
                "confirmation.ratio_high": f"{v.high:.4f}",
                "confirmation.decided_by": v.decided_by,
                "confirmation.regression": str(v.regression).lower(),
                "confirmation.node": conf.node_host,
                "confirmation.wall_s": f"{conf.wall_s:.1f}",
                "store.ratio": f"{conf.store.ratio:.4f}",
                "store.regression": str(conf.store.regression).lower(),
            }
        )
    return props


def _rounds_text(conf: Confirmation) -> str:
    head = f"baseline_{STATISTIC}_ms candidate_{STATISTIC}_ms ratio baseline_p50 candidate_p50"
    lines = [f"round order {head}"]
    for i, r in enumerate(conf.rounds, 1):
        lines.append(
            f"{i} {r.order} {r.baseline_ms:.4g} {r.candidate_ms:.4g} {r.ratio:.4f} "
            f"{r.baseline_p50_ms:.4g} {r.candidate_p50_ms:.4g}"
        )
    return "\n".join(lines)
