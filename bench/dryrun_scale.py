"""How the dry-run of playbooks/llama70b.yaml scales with the deployment size.

Renders the P/D playbook on inventory/example-cluster.yaml at 16, 64, 256 and 1024 nodes
(half prefill, half decode TP-8 workers, telemetry on every node), each in its own
subprocess, and prints wall time, the child's CPU time (user + system: steadier than wall
time on a shared machine), its peak RSS and least-squares lines (seconds = a + b * nodes)::

    PYTHONPATH=. python bench/dryrun_scale.py [NODES ...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def render(nodes: int) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS in MiB) of one dry-run at ``nodes`` nodes."""
    half = nodes // 2
    argv = [
        sys.executable, "-m", "engine", "run", str(REPO / "playbooks" / "llama70b.yaml"),
        "-i", str(REPO / "inventory" / "example-cluster.yaml"), "--dry-run", "--format", "json",
        "-e", f"layout.prefill.workers={half}", "-e", f"layout.decode.workers={nodes - half}",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    # wait4 gives this child's own rusage (getrusage(RUSAGE_CHILDREN) is a running maximum)
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{nodes} nodes: exit {code}\n{err[-2000:]}")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * scale / 2**20


def fit(rows: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares ``seconds = a + b * nodes``: (a, b)."""
    xs, ys = [r[0] for r in rows], [r[1] for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in rows) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [16, 64, 256, 1024]
    walls, cpus = [], []
    print(f"{'nodes':>6} {'wall s':>8} {'CPU s':>7} {'peak RSS MiB':>13}")
    for n in sizes:
        seconds, cpu, rss = render(n)
        walls.append((n, seconds))
        cpus.append((n, cpu))
        print(f"{n:>6} {seconds:>8.2f} {cpu:>7.2f} {rss:>13.0f}", flush=True)
    if len(sizes) >= 2:
        for what, rows in (("wall", walls), ("CPU", cpus)):
            a, b = fit(rows)
            # how far the line misses the largest size: a superlinear cost shows here
            n, y = rows[-1]
            print(f"fit ({what}): seconds = {a:.2f} + {b * 1000:.2f} ms/node * nodes "
                  f"(at {n}: measured {y:.2f}, line {a + b * n:.2f})")

if __name__ == "__main__":
    main()
