"""How the dry-run of playbooks/llama70b.yaml scales with the deployment size.

Renders the P/D playbook on inventory/example-cluster.yaml at 16, 64, 256 and 1024 nodes
(half prefill, half decode TP-8 workers, telemetry on every node), each in its own
subprocess, and prints wall time, the child's CPU time (user + system: steadier than wall
time on a shared machine), its peak RSS and least-squares lines (seconds = a + b * nodes)::

    PYTHONPATH=. python bench/dryrun_scale.py [NODES ...] [--runs 3] [--format text] [--json out.json]
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, bench_parser, fit, median_of, timed, write_json


def render(nodes: int, fmt: str) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one dry-run at ``nodes`` nodes."""
    half = nodes // 2
    argv = [
        sys.executable, "-m", "engine", "run", str(REPO / "playbooks" / "llama70b.yaml"),
        "-i", str(REPO / "inventory" / "example-cluster.yaml"), "--dry-run", "--format", fmt,
        "-e", f"layout.prefill.workers={half}", "-e", f"layout.decode.workers={nodes - half}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return timed(argv, cwd=REPO, env=env, capture=False)  # ~20 MB of JSON at 1024 nodes


def main() -> None:
    parser = bench_parser(__doc__, runs=1, runs_help="dry-runs per size (the median is shown)")
    parser.add_argument("nodes", nargs="*", type=int, default=[16, 64, 256, 1024])
    parser.add_argument("--format", dest="fmt", choices=["json", "text"], default="json", help="the plan's format (the issue's command prints text)")
    args = parser.parse_args()
    results: dict[int, list[dict[str, float]]] = {}
    walls, cpus = [], []
    print(f"{'nodes':>6} {'wall s':>8} {'CPU s':>7} {'peak RSS MiB':>13}   (median of {args.runs}, --format {args.fmt})")
    for n in args.nodes:
        runs = results[n] = [render(n, args.fmt) for _ in range(args.runs)]
        wall, cpu = median_of(runs, "wall_s") or 0.0, median_of(runs, "cpu_s") or 0.0
        walls.append((n, wall))
        cpus.append((n, cpu))
        print(f"{n:>6} {wall:>8.2f} {cpu:>7.2f} {max(r['rss_mib'] for r in runs):>13.0f}", flush=True)
    if len(args.nodes) >= 2:
        for what, rows in (("wall", walls), ("CPU", cpus)):
            a, b = fit(rows)
            # how far the line misses the largest size: a superlinear cost shows here
            n, y = rows[-1]
            print(f"fit ({what}): seconds = {a:.2f} + {b * 1000:.2f} ms/node * nodes "
                  f"(at {n}: measured {y:.2f}, line {a + b * n:.2f})")
    write_json(args.json, results)


if __name__ == "__main__":
    main()
