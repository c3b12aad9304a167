"""Drive playbooks/llama70b.yaml end to end and inspect the live stack before tearing it down.

Used by the local-scheduler test (tests/stack) and the local-Slurm test (tests/cluster): run
with ``--keep-running`` so the stack is still up, check what the issue asks for through the
real HTTP surfaces (router ``/workers``, the decode worker's KV-transfer counters,
VictoriaMetrics), then ``smlplay down`` and check nothing of the run is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.ports import free_ports

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "llama70b.yaml"


def get_json(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


@dataclass
class StackRun:
    workdir: Path
    proc: subprocess.CompletedProcess[str]
    ports: dict[str, int]

    @property
    def run_dir(self) -> Path:
        return sorted((self.workdir / "runs").iterdir())[-1]

    def state(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "state.json").read_text())

    def smlplay(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "engine", *args], cwd=self.workdir, env=env_for(self.workdir), capture_output=True, text=True, timeout=timeout)

    def leftovers(self) -> list[str]:
        """Processes whose command line mentions this run's directory (scripts, logs)."""
        marker = str(self.run_dir)
        out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
        return [line for line in out.splitlines()[1:] if marker in line and "ps -eo" not in line]


def env_for(workdir: Path) -> dict[str, str]:
    return {**os.environ, "SMLPLAY_RUNS_DIR": str(workdir / "runs"), "PYTHONPATH": str(REPO), "COLUMNS": "200"}


def run_stack(workdir: Path, *extra: str, timeout: float = 600) -> StackRun:
    """Run llama70b with small benchmark settings and free ports, leaving it running."""
    names = ["router", "metrics", "prefill", "decode", "bootstrap", "vm", "vmagent", "node", "otela"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    overrides = {
        "router_port": ports["router"],
        "router_metrics_port": ports["metrics"],
        "prefill_port_base": ports["prefill"],
        "decode_port_base": ports["decode"],
        "prefill_bootstrap_port_base": ports["bootstrap"],
        "benchmark": {"tool": "bench_serving", "concurrencies": [1, 4], "isl": 32, "osl": 8, "prompts_per_concurrency": 2, "min_prompts": 4},
        "opentela": {"bootstrap_addr": "/ip4/127.0.0.1/tcp/43905/p2p/12D3KooWSampzePeerForThisMachine", "api_port": ports["otela"]},
        "telemetry": {"victoria_metrics_port": ports["vm"], "vmagent_port": ports["vmagent"], "node_exporter_port": ports["node"], "scrape_interval": "1s"},
    }
    cmd = [sys.executable, "-m", "engine", "run", str(PLAYBOOK), "--keep-running", "-e", json.dumps(overrides), *extra]
    proc = subprocess.run(cmd, cwd=workdir, env=env_for(workdir), capture_output=True, text=True, timeout=timeout)
    return StackRun(workdir, proc, ports)


def check_live_stack(stack: StackRun) -> None:
    """What the issue asks of a P/D run, checked on the running stack."""
    out = stack.proc.stdout + stack.proc.stderr
    assert stack.proc.returncode == 0, out[-6000:]
    state = stack.state()
    assert state["status"] == "kept-running"
    router = f"http://127.0.0.1:{stack.ports['router']}"
    # the router saw both worker kinds
    workers = get_json(f"{router}/workers")
    assert workers["stats"]["prefill_count"] == 1 and workers["stats"]["decode_count"] == 1, workers
    kinds = {w["worker_type"]: w for w in workers["workers"]}
    assert kinds["prefill"]["bootstrap_port"] == stack.ports["bootstrap"]
    # a P/D request completed through the bootstrap handshake: the decode worker fetched KV
    decode = get_json(f"{kinds['decode']['url']}/get_server_info")
    assert decode["sim_counters"]["kv_transfers"] > 0, decode["sim_counters"]
    assert decode.get("sim_last_kv_error") in (None, ""), decode.get("sim_last_kv_error")
    # benchmark results exist with completed == requested, and output tokens
    summary = json.loads((stack.run_dir / "results" / "summary.json").read_text())
    rows = summary["runs"] if isinstance(summary, dict) else summary
    assert [r["concurrency"] for r in rows] == [1, 4]
    for row in rows:
        assert row["completed"] == row["num_prompts"] and row["total_output_tokens"] > 0, row
    # telemetry landed in VictoriaMetrics through the real vmagent, with the run's labels
    vm = f"http://127.0.0.1:{stack.ports['vm']}"
    deadline = time.monotonic() + 40
    series: list[Any] = []
    while time.monotonic() < deadline:
        urllib.request.urlopen(f"{vm}/internal/force_flush", timeout=5).read()
        query = urllib.parse.quote('count by (node, model) ({__name__=~"sglang:.*|node_cpu_seconds_total"})')
        series = get_json(f"{vm}/api/v1/query?query={query}")["data"]["result"]
        nodes = {s["metric"].get("node") for s in series}
        if len(nodes) >= 2 and all(s["metric"].get("model") for s in series):
            break
        time.sleep(1)
    assert len({s["metric"].get("node") for s in series}) >= 2, series
    otela = (stack.run_dir / "otela-record.jsonl").read_text()
    assert '"event": "registered"' in otela or '"event":"registered"' in otela


def tear_down_and_check(stack: StackRun) -> None:
    down = stack.smlplay("down", stack.run_dir.name)
    assert down.returncode == 0, down.stdout + down.stderr
    deadline = time.monotonic() + 20
    while stack.leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not stack.leftovers(), stack.leftovers()
    otela = (stack.run_dir / "otela-record.jsonl").read_text()
    assert "deregistered" in otela
