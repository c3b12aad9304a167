#!/usr/bin/env python3
"""Readiness lag: how soon ``smlplay run`` notices a worker turned healthy, and at what cost.

N stand-in workers (``bench/readiness_worker.py``: ``/health`` answers 503 until a known
moment, then 200, and every poll is recorded) are started by one ``process`` task with an
``http`` health check, on N inventory hosts (``connection: local``) in parallel, the way a
role starts its workers. Worker ``i`` turns healthy ``--delays[i]`` seconds after it starts.

For each worker: the lag from the moment it turned healthy to the engine's ``task_result``
event for its host (events.jsonl), and how many times it was polled. For the task: its
wall time against the slowest worker's delay (parallel: about the slowest) and the sum of
the delays (what starting them one after the other would take)::

    .venv/bin/python bench/readiness.py [--delays 1,3,7,15] [--runs 2]

It starts servers: run it under ``flock /tmp/smlplay-servers.lock`` on a shared machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, bench_parser, write_json

PLAYBOOK = """
- name: start the workers
  hosts: workers
  tasks:
    - name: start a worker and wait until it is healthy
      process:
        name: worker
        cmd: >-
          exec {{ smlplay_python }} {{ worker_script }} --port {{ worker_port }}
          --ready-after {{ ready_after }} --record {{ record }}
        ports: ["{{ worker_port }}"]
      health:
        http: {url: "http://127.0.0.1:{{ worker_port }}/health"}
        timeout: 120s
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_run(delays: list[float], workdir: Path) -> dict[str, Any]:
    records = [workdir / f"worker{i}.jsonl" for i in range(len(delays))]
    for r in records:
        r.unlink(missing_ok=True)
    hosts = "".join(
        f"        w{i}: {{connection: local, worker_port: {free_port()}, ready_after: {d}, record: {records[i]}}}\n"
        for i, d in enumerate(delays)
    )
    (workdir / "inventory.yaml").write_text(
        f"all:\n  vars:\n    worker_script: {REPO / 'bench' / 'readiness_worker.py'}\n  children:\n    workers:\n      hosts:\n{hosts}"
    )
    (workdir / "playbook.yaml").write_text(PLAYBOOK)
    runs = workdir / "runs"
    env = {**os.environ, "SMLPLAY_RUNS_DIR": str(runs), "PYTHONPATH": str(REPO)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "run", "playbook.yaml", "-i", "inventory.yaml", "--forks", str(len(delays))],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=240,
    )
    if proc.returncode != 0:
        raise SystemExit(f"smlplay run failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    run_dir = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    start = next(e["ts"] for e in events if e["event"] == "task_start" and "healthy" in e.get("task", ""))
    noticed = {e["host"]: e["ts"] for e in events if e["event"] == "task_result"}
    workers = []
    for i, (delay, record) in enumerate(zip(delays, records, strict=True)):
        lines = [json.loads(line) for line in record.read_text().splitlines()]
        ready_at = next(e["ready_at"] for e in lines if e["event"] == "start")
        polls = [e for e in lines if e["event"] == "poll"]
        workers.append(
            {"delay_s": delay, "lag_s": noticed[f"w{i}"] - ready_at, "polls": len(polls),
             "polls_after_ready": sum(1 for p in polls if p["healthy"])}
        )
    return {"task_s": max(noticed.values()) - start, "workers": workers}


def main() -> None:
    parser = bench_parser(__doc__, runs=2)
    parser.add_argument("--delays", default="1,3,7,15", help="seconds until each worker is healthy (one worker each)")
    args = parser.parse_args()
    delays = [float(d) for d in args.delays.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="smlplay-readiness-"))
    try:
        results = []
        for rnd in range(args.runs):
            results.append(one_run(delays, workdir))
            print(f"run {rnd + 1}: task {results[-1]['task_s']:.2f} s, lags "
                  + ", ".join(f"{w['lag_s']:.2f}" for w in results[-1]["workers"]), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lags = [w["lag_s"] for r in results for w in r["workers"]]
    print(f"readiness: {len(delays)} workers started in parallel (one per host), healthy after {args.delays} s, {args.runs} runs")
    print(f"{'delay s':>8} {'lag s (median)':>15} {'lag s (max)':>12} {'polls':>6} {'polls/s':>8}")
    for i, delay in enumerate(delays):
        ws = [r["workers"][i] for r in results]
        polls = statistics.median(w["polls"] for w in ws)
        print(f"{delay:8.1f} {statistics.median(w['lag_s'] for w in ws):15.2f} {max(w['lag_s'] for w in ws):12.2f} "
              f"{polls:6.0f} {polls / (delay + statistics.median(w['lag_s'] for w in ws)):8.2f}")
    task = statistics.median(r["task_s"] for r in results)
    print(f"median lag {statistics.median(lags):.2f} s (target < 1 s), max {max(lags):.2f} s")
    print(f"task wall {task:.2f} s; slowest worker {max(delays):.1f} s (x{task / max(delays):.2f}); "
          f"sum of delays {sum(delays):.1f} s (x{task / sum(delays):.2f})")
    write_json(args.json, results)


if __name__ == "__main__":
    main()
