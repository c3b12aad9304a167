#!/usr/bin/env python3
"""Teardown time: from a failed task to every process stopped and the allocation released.

On the local Slurm cluster (``tests/cluster/local-slurm.sh up``): ``smlplay run`` allocates
``--nodes`` nodes (a holding ``sbatch`` job), starts a long-lived ``process`` on each (an
srun step), then a task fails. The harness watches from outside: the failure is the
``task_result`` event with status ``failed`` in the run's ``events.jsonl``; "clean" is the
first moment the job is no longer in ``squeue`` and no process carrying the run's marker
is left on the machine (``pgrep -f``, read-only). It also reports when ``smlplay`` exited::

    flock /tmp/smlplay-servers.lock .venv/bin/python bench/teardown.py [--runs 3] [--nodes 2]

Target (issue #15): under 5 s.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, bench_parser, median_of, write_json

PLAYBOOK = """
- name: allocate
  hosts: localhost
  tasks:
    - slurm_allocate: {{nodes: {nodes}, time: '10', poll: 0.1, job_name: {marker}}}
- name: serve, then fail
  hosts: nodes
  tasks:
    - name: a long-lived server on every node
      process:
        name: server
        cmd: exec sleep 300 # {marker}
        tier: 1
    - name: the failure
      command: 'false'
"""


def _events(runs: Path) -> list[dict[str, Any]]:
    dirs = [p for p in runs.iterdir() if p.is_dir()] if runs.exists() else []
    if not dirs:
        return []
    path = max(dirs, key=lambda p: p.stat().st_mtime) / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip().endswith("}")]


def _clean(marker: str) -> bool:
    queued = subprocess.run(["squeue", "-h", "-n", marker, "-o", "%i"], capture_output=True, text=True).stdout.strip()
    left = subprocess.run(["pgrep", "-f", f"sleep 300 # {marker}"], capture_output=True, text=True).stdout.strip()
    return not queued and not left


def one_run(nodes: int, workdir: Path) -> dict[str, float]:
    marker = f"smlplay-bench-teardown-{secrets.token_hex(3)}"
    (workdir / "inventory.yaml").write_text("all:\n  hosts:\n    localhost: {connection: local}\n")
    (workdir / "playbook.yaml").write_text(PLAYBOOK.format(nodes=nodes, marker=marker))
    runs = workdir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    env = {**os.environ, "SMLPLAY_RUNS_DIR": str(runs), "PYTHONPATH": str(REPO)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.Popen([sys.executable, "-m", "engine", "run", "playbook.yaml", "-i", "inventory.yaml"],
                            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    failed_at = clean_at = exited_at = None
    deadline = time.time() + 120
    while time.time() < deadline and (clean_at is None or exited_at is None):
        now = time.time()
        if exited_at is None and proc.poll() is not None:
            exited_at = now
        if failed_at is None:
            failed_at = next((e["ts"] for e in _events(runs) if e["event"] == "task_result" and e.get("status") == "failed"), None)
        elif clean_at is None and _clean(marker):
            clean_at = time.time()
        time.sleep(0.02)
    out = proc.stdout.read().decode() if proc.stdout else ""
    if proc.wait(30) != 1 or failed_at is None or clean_at is None or exited_at is None:
        raise SystemExit(f"unexpected run (exit {proc.returncode}, failed {failed_at}, clean {clean_at}):\n{out[-3000:]}")
    return {"clean_s": clean_at - failed_at, "exit_s": exited_at - failed_at}


def main() -> None:
    parser = bench_parser(__doc__, runs=3)
    parser.add_argument("--nodes", type=int, default=2)
    args = parser.parse_args()
    subprocess.run(["bash", str(REPO / "tests/cluster/local-slurm.sh"), "up"], check=True, capture_output=True)
    workdir = Path(tempfile.mkdtemp(prefix="smlplay-teardown-"))
    try:
        results = []
        for rnd in range(args.runs):
            results.append(one_run(args.nodes, workdir))
            print(f"run {rnd + 1}: clean {results[-1]['clean_s']:.2f} s, smlplay exited {results[-1]['exit_s']:.2f} s after the failure", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    clean = [r["clean_s"] for r in results]
    print(f"teardown on the local Slurm cluster: {args.nodes} nodes, one process each, {args.runs} runs")
    print(f"failure -> all processes stopped and the job released: median {statistics.median(clean):.2f} s "
          f"(max {max(clean):.2f} s; target < 5 s); smlplay exited after {median_of(results, 'exit_s'):.2f} s")
    write_json(args.json, results)


if __name__ == "__main__":
    main()
