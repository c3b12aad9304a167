"""End to end, all real processes on loopback: vmagent scrapes a simulated SGLang server's
``/metrics`` and prometheus-node-exporter (the DCGM exporter's stand-in), and remote-writes into
VictoriaMetrics with the job labels the telemetry role adds (``-remoteWrite.label``)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.sim.conftest import HOST, LIFETIME_S, Proc, Sim, free_ports, wait_healthy, wait_until
from tests.telemetry.conftest import VictoriaMetrics, require_binary

JOB = "4242"
MODEL = "llama"


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Processes a test started; all stopped at the end, whatever happened."""
    started: list[Proc] = []
    yield started
    for p in reversed(started):
        p.stop()


def test_vmagent_remote_writes_labelled_series(
    victoria_metrics: VictoriaMetrics, procs: list[Proc], tmp_path: Path
) -> None:
    vmagent = require_binary("vmagent")
    node_exporter = require_binary("prometheus-node-exporter")
    sim_port, node_port, agent_port = free_ports(3)

    sim = Sim(sim_port, ["--model-path", "m", "--served-model-name", MODEL], tmp_path / "sim.log")
    procs.append(sim)
    wait_healthy(sim)
    done = sim.post("/v1/completions", {"model": MODEL, "prompt": "a b", "max_tokens": 2})
    assert done.status_code == 200, done.text

    node = Proc(
        [
            "timeout",
            str(LIFETIME_S),
            node_exporter,
            f"--web.listen-address={HOST}:{node_port}",
        ],
        tmp_path / "node-exporter.log",
    )
    procs.append(node)
    wait_until(
        lambda: httpx.get(f"http://{HOST}:{node_port}/metrics", timeout=5).status_code == 200,
        node,
        what="node exporter /metrics",
    )

    scrape = tmp_path / "scrape.yml"
    scrape.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: sglang\n"
        f"    static_configs: [{{targets: ['{HOST}:{sim_port}']}}]\n"
        "  - job_name: node\n"
        f"    static_configs: [{{targets: ['{HOST}:{node_port}']}}]\n"
    )
    hostname = socket.gethostname()
    agent = Proc(
        [
            "timeout",
            str(LIFETIME_S),
            vmagent,
            f"-httpListenAddr={HOST}:{agent_port}",
            f"-promscrape.config={scrape}",
            f"-remoteWrite.url={victoria_metrics.write_url}",
            f"-remoteWrite.tmpDataPath={tmp_path / 'vmagent-data'}",
            f"-remoteWrite.label=slurm_job_id={JOB}",
            f"-remoteWrite.label=model={MODEL}",
            f"-remoteWrite.label=node={hostname}",
        ],
        tmp_path / "vmagent.log",
    )
    procs.append(agent)
    agent_url = f"http://{HOST}:{agent_port}"
    wait_until(
        lambda: httpx.get(agent_url + "/health", timeout=5).status_code == 200,
        agent,
        what="vmagent /health",
    )

    wanted = {
        "sim": f'sglang:num_running_reqs{{slurm_job_id="{JOB}"}}',
        "requests": f'sglang:num_requests_total{{slurm_job_id="{JOB}"}}',
        "node": f'node_cpu_seconds_total{{slurm_job_id="{JOB}"}}',
    }
    found: dict[str, list[dict[str, object]]] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(found) < len(wanted):
        httpx.post(agent_url + "/internal/force_flush", timeout=5)
        for key, promql in wanted.items():
            if key not in found and (series := victoria_metrics.query(promql)):
                found[key] = series
        if len(found) < len(wanted):
            assert agent.alive(), agent.log[-3000:]
            time.sleep(0.5)
    missing = sorted(set(wanted) - set(found))
    assert not missing, f"no series for {missing} after 20 s; vmagent log:\n{agent.log[-3000:]}"

    [running] = found["sim"]
    labels = running["metric"]
    assert labels["slurm_job_id"] == JOB
    assert labels["model"] == MODEL
    assert labels["node"] == hostname
    assert labels["job"] == "sglang" and labels["instance"] == f"{HOST}:{sim_port}"
    assert labels["model_name"] == MODEL  # the server's own label survives next to ours
    assert float(found["requests"][0]["value"][1]) >= 1
    assert all(s["metric"]["job"] == "node" for s in found["node"])
    assert all(s["metric"]["node"] == hostname for s in found["node"])
