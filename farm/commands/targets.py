"""``farm targets``: every node of the cluster, its hardware, and the targets it serves.

Without ``--address`` the farm starts its own Ray instance on this machine (as ``farm run`` does)
and reports this machine; ``--address auto`` inspects the cluster ``ray start`` started here.
Each node (hostname, IP, id) is probed by a zero-CPU Ray task pinned to it (see
:mod:`farm.cluster.fleet`). Exit code 1 when a node is mislabelled (advertises a target it cannot
serve) or does not answer: the fleet needs fixing before a job's numbers can be trusted.
"""

from __future__ import annotations

import argparse
import json

from farm.cluster.fleet import DEFAULT_TIMEOUT_S, NodeReport
from farm.errors import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="Ray cluster to inspect (HEAD:6379 or 'auto')")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds a node may take to answer (default {DEFAULT_TIMEOUT_S:g})",
    )


def run(args: argparse.Namespace) -> int:
    from farm.cluster.fleet import probe_cluster
    from farm.cluster.lifecycle import alive_nodes, start_or_connect

    if args.timeout <= 0:
        raise UsageError(f"--timeout: expected a positive number of seconds, got {args.timeout}")
    start_or_connect(args.address)  # a cluster that cannot be joined is a UsageError (exit 2)
    reports = probe_cluster(args.timeout)
    ips = {n.node_id: n.ip for n in alive_nodes()}
    if args.json:
        nodes = [{**r.to_dict(), "ip": ips.get(r.node_id)} for r in reports]
        print(json.dumps({"nodes": nodes}, indent=2, default=str))
    else:
        _print(reports, ips)
    healthy = all(r.error is None and not r.mislabelled for r in reports)
    return 0 if healthy else 1


def _gpu_text(gpus: list[dict[str, str]]) -> str:
    return "\n".join(f"{g['model']} ({g['memory']})" for g in gpus) or "—"


def _print(reports: list[NodeReport], ips: dict[str, str | None]) -> None:
    from rich.table import Table
    from rich.text import Text

    from farm.display import make_console
    from targets import catalog

    console = make_console()
    table = Table(title=f"{len(reports)} node(s)", title_justify="left", show_lines=True)
    for col in ("node", "arch", "CPU", "GPU", "runtimes", "serves", "could serve", "problems"):
        table.add_column(col, overflow="fold")
    for r in reports:
        p = r.probe
        problems = [f"{t}: {why}" for t, why in sorted(r.mislabelled.items())]
        if r.error:
            problems.append(r.error)
        runtimes = p.get("runtimes", {})
        table.add_row(
            f"{p.get('host', r.ray_host)}\n{ips.get(r.node_id) or '?'}\n{r.node_id[:12]}",
            p.get("arch", "?"),
            f"{p.get('cpu_model', '?')}\n{r.cpus} CPUs for Ray, {p.get('memory_gib', '?')} GiB\n"
            + " ".join(p.get("cpu_flags", [])),
            _gpu_text(p.get("gpus", [])),
            Text("\n".join(f"{k}: {why or 'yes'}" for k, why in runtimes.items())),
            "\n".join(r.serves) or "—",
            "\n".join(r.could_serve) or "—",
            Text("\n".join(problems), style="red") if problems else "—",
        )
    console.print(table)

    def where(r: NodeReport) -> str:
        return f"{r.probe.get('host', r.ray_host)} ({ips.get(r.node_id) or '?'})"

    served = {name: [where(r) for r in reports if name in r.serves] for name in catalog()}
    summary = Table(title="Catalog targets", title_justify="left")
    summary.add_column("target")
    summary.add_column("nodes serving it")
    for name, hosts in served.items():
        summary.add_row(name, ", ".join(hosts) or "[dim]none[/dim]")
    console.print(summary)
