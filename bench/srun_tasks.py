"""What one task costs on a compute node reached as srun steps, against the local floor.

Workload: 2 nodes of the local Slurm cluster (tests/cluster/local-slurm.sh), 40 trivial
tasks (`true` / `echo hello`) per node, run through the whole engine (`smlplay run`). Each
variant is one engine process; the per-task cost is the time from the first task on the
nodes to the last result (the run's events), divided by the tasks. Variants:

* ``srun``: ``slurm_allocate`` (scheduler slurm, gateway localhost); every task is one
  ``srun --overlap`` step on its node, what a compute node costs today;
* ``local``: the local scheduler's virtual nodes; every task is one local subprocess, the
  floor for "a process per task" on this machine.

    .venv/bin/python bench/srun_tasks.py [--tasks 40] [--runs 3]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, bench_parser

PLAYBOOK = """
- hosts: localhost
  tasks:
    - slurm_allocate: {{scheduler: {scheduler}, nodes: 2, time: "10", poll: 0.1}}
- hosts: nodes
  tasks:
{tasks}
"""


def playbook(scheduler: str, tasks: int) -> str:
    commands = ["'true'", "echo hello"]  # quoted: a bare true is a YAML boolean
    body = "".join(f"    - command: {commands[i % 2]}\n" for i in range(tasks))
    return PLAYBOOK.format(scheduler=scheduler, tasks=body or "    - meta: noop\n")


def timed(path: Path, env: dict[str, str]) -> float:
    """Seconds from the first task on the nodes to the last result (the run's events.jsonl):
    the allocation's start-up varies by more than the tasks cost, so wall time cannot."""
    runs = Path(env["SMLPLAY_RUNS_DIR"])
    before = set(runs.iterdir()) if runs.exists() else set()
    proc = subprocess.run([sys.executable, "-m", "engine", "run", str(path), "-i", str(path.parent / "inv.yaml")], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{path.name} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    (run_dir,) = set(runs.iterdir()) - before
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    play = [i for i, e in enumerate(events) if e["event"] == "play_start"][1]  # the nodes' play
    start = next(e["ts"] for e in events[play:] if e["event"] == "task_start")
    return max(e["ts"] for e in events[play:] if e["event"] == "task_result") - start


def main() -> None:
    parser = bench_parser(__doc__, runs=3, json_out=False)
    parser.add_argument("--tasks", type=int, default=40)
    args = parser.parse_args()
    subprocess.run(["bash", str(REPO / "tests/cluster/local-slurm.sh"), "up"], check=True, capture_output=True)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "inv.yaml").write_text("all:\n  hosts:\n    localhost: {connection: local}\n")
        env = {**os.environ, "SMLPLAY_RUNS_DIR": str(d / "runs")}
        per_task: dict[str, float] = {}
        for scheduler in ("local", "slurm"):
            (d / f"{scheduler}-full.yaml").write_text(playbook(scheduler, args.tasks))
            timed(d / f"{scheduler}-full.yaml", env)  # warm-up
            full = statistics.median(timed(d / f"{scheduler}-full.yaml", env) for _ in range(args.runs))
            per_task[scheduler] = full / args.tasks
        floor = per_task["local"]
        print(f"{args.tasks} tasks x 2 nodes, median of {args.runs}")
        print(f"{'variant':8} {'ms/task':>8} {'x floor':>8}")
        for name, label in (("local", "local"), ("slurm", "srun")):
            print(f"{label:8} {per_task[name] * 1000:8.1f} {per_task[name] / floor:8.2f}")


if __name__ == "__main__":
    main()
