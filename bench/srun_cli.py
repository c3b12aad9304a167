#!/usr/bin/env python3
"""The whole ``smlplay run`` over srun, against a raw loop over one long-lived step per node.

The workload of ``bench/cli_tasks.py`` on compute nodes: the 4 nodes of the local Slurm
cluster (``tests/cluster/local-slurm.sh up``), 50 ``command`` tasks alternating ``true`` and
``echo hello``, each on the 4 nodes in parallel (200 commands). Both variants are one whole
process that allocates the 4 nodes (a holding ``sbatch`` job, waited for until it runs),
runs the 200 commands and releases the job (``scancel``):

* ``smlplay``: ``smlplay run playbook.yaml -i inventory.yaml``: ``slurm_allocate`` from
  localhost, then the tasks on the ``nodes`` group (srun transport: one shell step per node);
* ``floor``: plain Python: ``sbatch``, poll ``squeue``, then ONE ``srun --overlap`` step per
  node running ``bash``, fed each command through stdin with an end marker (no stderr
  separation, no isolation): what carrying foreground commands on compute nodes costs
  at the least.

The variants take turns; one warm-up round, then the median of ``--runs``::

    flock /tmp/smlplay-servers.lock .venv/bin/python bench/srun_cli.py [--runs 3] [--tasks 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bench_parser, median_of, timed, write_json
from cli_tasks import smlplay_argv
from ssh_tasks import commands, expected

REPO = Path(__file__).resolve().parents[1]
NODES = 4


def write_workload(workdir: Path, tasks: int) -> None:
    (workdir / "inventory.yaml").write_text("all:\n  hosts:\n    localhost: {connection: local}\n")
    body = "".join(f"    - name: task {i}\n      command: '{cmd}'\n" for i, cmd in enumerate(commands(tasks)))
    (workdir / "playbook.yaml").write_text(
        "- name: allocate\n  hosts: localhost\n  tasks:\n"
        f"    - slurm_allocate: {{nodes: {NODES}, time: '10', poll: 0.1, job_name: smlplay-bench-srun-cli}}\n"
        f"- name: {tasks} trivial tasks\n  hosts: nodes\n  tasks:\n{body}"
    )


# ------------------------------------------------------------------ the floor (a child)


def run_floor(tasks: int) -> None:
    import secrets
    from concurrent.futures import ThreadPoolExecutor

    job = subprocess.run(
        ["sbatch", "--parsable", f"--nodes={NODES}", "--time=10", "--job-name=smlplay-bench-srun-floor",
         "--output=/dev/null", "--wrap", "exec sleep infinity"],
        check=True, capture_output=True, text=True,
    ).stdout.strip().split(";")[0]
    try:
        while True:
            state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %N"], capture_output=True, text=True).stdout.split()
            if state and state[0] == "RUNNING":
                nodes = subprocess.run(["scontrol", "show", "hostnames", state[1]], check=True, capture_output=True, text=True).stdout.split()
                break
            time.sleep(0.1)
        shells = [
            subprocess.Popen(
                ["srun", f"--jobid={job}", "--overlap", "-N1", "-n1", f"-w{node}", "--unbuffered", "bash"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0,
            )
            for node in nodes
        ]

        def run(shell: subprocess.Popen[bytes], cmd: str) -> tuple[int, str]:
            assert shell.stdin is not None and shell.stdout is not None
            marker = secrets.token_hex(8)
            shell.stdin.write(f"{cmd}; echo {marker} $?\n".encode())
            buf = b""
            while (i := buf.find(marker.encode() + b" ")) < 0 or not buf.endswith(b"\n"):
                chunk = shell.stdout.read1(65536) if hasattr(shell.stdout, "read1") else os.read(shell.stdout.fileno(), 65536)
                if not chunk:
                    raise EOFError("step closed")
                buf += chunk
            return int(buf[i + len(marker) + 1 :].strip()), buf[:i].decode()

        with ThreadPoolExecutor(len(shells)) as pool:
            list(pool.map(lambda s: run(s, "true"), shells))  # every step has started
            for cmd in commands(tasks):
                for rc, out in pool.map(lambda s, c=cmd: run(s, c), shells):
                    assert rc == 0 and out == expected(cmd), (rc, out)
        for shell in shells:
            assert shell.stdin is not None
            shell.stdin.close()
            shell.wait(10)
    finally:
        subprocess.run(["scancel", job], check=False)


# ------------------------------------------------------------------------ parent


def main() -> None:
    parser = bench_parser(__doc__, runs=3)
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--floor-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        run_floor(args.tasks)
        return
    subprocess.run(["bash", str(REPO / "tests/cluster/local-slurm.sh"), "up"], check=True, capture_output=True)
    workdir = Path(tempfile.mkdtemp(prefix="smlplay-srun-cli-"))
    write_workload(workdir, args.tasks)
    env = {**os.environ, "PYTHONPATH": str(REPO), "SMLPLAY_RUNS_DIR": str(workdir / "runs")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as on a user's machine (see cli_tasks.py)
    argvs = {
        "smlplay": [*smlplay_argv(), "run", "playbook.yaml", "-i", "inventory.yaml"],
        "floor": [sys.executable, __file__, "--floor-child", "--tasks", str(args.tasks)],
    }
    runs: dict[str, list[dict[str, float]]] = {v: [] for v in argvs}
    try:
        for rnd in range(args.runs + 1):
            for variant, argv in argvs.items():
                marks = timed(argv, cwd=workdir, env=env)
                if rnd:
                    runs[variant].append(marks)
                print(f"round {rnd} {variant:8s} {marks['wall_s']:6.2f} s wall {marks['cpu_s']:6.2f} s CPU", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(table(runs, args)))
    write_json(args.json, runs)


def table(runs: dict[str, list[dict[str, float]]], args: Any) -> list[str]:
    def med(v: str, key: str) -> float:
        return median_of(runs[v], key) or 0.0

    lines = [
        f"srun, {NODES} nodes of the local Slurm cluster x {args.tasks} tasks, whole process incl. allocate "
        f"and release, median of {args.runs} after a warm-up, {os.cpu_count()} cores",
        f"{'variant':<8} {'wall s':>7} {'range':>13} {'x floor':>8} | {'CPU s':>6} {'x floor':>8}",
    ]
    for v, rs in runs.items():
        walls = [r["wall_s"] for r in rs]
        lines.append(
            f"{v:<8} {med(v, 'wall_s'):7.2f} {min(walls):6.2f}-{max(walls):<6.2f} {med(v, 'wall_s') / med('floor', 'wall_s'):8.2f} | "
            f"{med(v, 'cpu_s'):6.2f} {med(v, 'cpu_s') / med('floor', 'cpu_s'):8.2f}"
        )
    return lines


if __name__ == "__main__":
    main()
