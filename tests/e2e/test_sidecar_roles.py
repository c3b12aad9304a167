"""The sidecar roles end to end through the real CLI, with real processes and no mocks.

* ``telemetry``: on two local virtual nodes (the local scheduler), a simulated SGLang worker per
  node, then the role on ``nodes``: prometheus-node-exporter and vmagent per node, one
  VictoriaMetrics on the first node. The playbook itself queries the store (``http`` with
  ``until``) and saves the answer; the test checks the series' labels and that nothing is left
  running. Needs the Debian packages victoria-metrics and prometheus-node-exporter (skipped
  without them; a failure under CI=true).
* ``opentela-register``: OpenTela itself cannot be installed here, so these tests run the
  role against the local stand-in (``engine.sim.otela``, chosen by the role for framework
  ``sim``), which records every event as a JSON line: registration while the run is up and
  deregistration at teardown are read from that record.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import Workdir, pid_alive
from tests.ports import free_ports

pytestmark = pytest.mark.e2e

BOOTSTRAP = "/ip4/127.0.0.1/tcp/43905/p2p/12D3KooWJmxW4Dbk7mDhdfeLjXq2VvrfvxsqaR4SjQrbyGYDwXqo"
APT = "apt-get install -y --no-install-recommends victoria-metrics prometheus-node-exporter"


def need_binaries(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (install with: {APT})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"sidecar tests cannot run under CI: {reason}")
        pytest.skip(reason)


def port_base(span: int) -> int:
    """A port P with P..P+span-1 all free on loopback (sidecars add node_slot to a base)."""
    return free_ports(span, consecutive=True)[0]


def started_pids(work: Workdir) -> list[int]:
    """Pids of the processes that `process` tasks (outside loops) started in the last run
    (none when the input was refused before a run record existed)."""
    if not (work.path / "runs").is_dir():
        return []
    return [
        e["result"]["pid"]
        for e in work.events()
        if e["event"] == "task_result" and isinstance(e["result"].get("pid"), int)
    ]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _mentioning(path: Path) -> list[str]:
    """Command lines of live processes that name ``path`` (scripts, configs, data dirs)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or not pid_alive(int(proc.name)):
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def assert_torn_down(work: Workdir, ports: tuple[int, ...] = ()) -> None:
    """Nothing the run started is left: no recorded process or teardown step, no started pid
    alive, no process naming the work dir, none of the given ports listening."""
    state = work.state()
    assert state["processes"] == [] and state["teardown"] == [], state
    assert not [p for p in started_pids(work) if pid_alive(p)], "processes outlived the run"
    assert not _mentioning(work.path)
    assert not [p for p in ports if _listening(p)], "a sidecar port still answers"


def shellcheck(scripts: list[Path]) -> None:
    assert scripts
    for script in scripts:
        proc = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{script}: {proc.stderr}"
    if shutil.which("shellcheck"):
        proc = subprocess.run(["shellcheck", "-s", "bash", *map(str, scripts)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def rendered(out_dir: Path, suffix: str) -> dict[str, str]:
    """The template files a `--dry-run --out DIR` rendered, by ``HOST/DEST-NAME``."""
    files = {}
    for step in sorted(out_dir.glob("*/*/*.txt")):
        text = step.read_text()
        match = re.search(r"render \S+ -> (\S+)\n\s+--- \S+ ---\n((?:      .*\n?)*)", text)
        if match and match.group(1).endswith(suffix):
            body = "".join(line[6:] + "\n" for line in match.group(2).splitlines())
            files[f"{step.parent.name}/{Path(match.group(1)).name}"] = body
    return files


# --- telemetry ------------------------------------------------------------------------------

ALLOCATE = """
- name: allocate two virtual nodes
  hosts: localhost
  tasks:
    - slurm_allocate:
        scheduler: local
        gpus_per_node: 1
        layout: {workers: 2, router: {count: 1, on: workers}}
"""

WORKERS = """
- name: one simulated SGLang worker per node
  hosts: workers
  vars:
    framework: sim
  tasks:
    - name: where the workers run
      set_fact:
        serving_workers: "{{{{ groups['workers'] | place_workers({{'workers': 2, 'tp': 1}}, role='workers', gpus_per_node=1, port={worker_port}) }}}}"
    - name: the router host's metrics (here the first worker's, so a scrape has something to read)
      set_fact:
        router_metrics_url: "http://127.0.0.1:{worker_port}/metrics"
      when: inventory_hostname in groups['router']
    - name: start the worker
      process:
        name: "{{{{ item.name }}}}"
        cmd: >-
          exec {{{{ smlplay_python }}}} -m engine.sim --model-path m --served-model-name llama
          --host 127.0.0.1 --port {{{{ item.port }}}}
        ports: ["{{{{ item.port }}}}"]
      loop: "{{{{ serving_workers | ranks_on(inventory_hostname) }}}}"
      health:
        http: "http://127.0.0.1:{{{{ item.port }}}}/health"
        timeout: 60s
        interval: 0.2
"""


def telemetry_playbook(worker_port: int, base: int, telemetry_extra: str = "", check: str = "") -> str:
    return (
        ALLOCATE
        + WORKERS.format(worker_port=worker_port)
        + f"""
- name: telemetry on every node
  hosts: nodes
  vars:
    model: {{name: llama, path: m}}
    framework: sim
    telemetry:
      scrape_interval: 1s
      victoria_metrics_port: {base}
      vmagent_port: {base + 1}
      node_exporter_port: {base + 10}
      dcgm_port: {base + 20}
      labels: {{team: sidecar-test}}
{telemetry_extra}
  roles:
    - telemetry
{check}
"""
    )


QUERY = 'count by (job, node, slurm_job_id, model, framework, user, team) ({__name__=~"sglang:num_requests_total|node_exporter_build_info"})'

CHECK = f"""
  post_tasks:
    - name: every node knows where to query
      assert:
        that:
          - telemetry_query_url == hostvars[groups['nodes'][0]].telemetry_query_url
          - telemetry_query_url is match('^http://127[.]0[.]0[.]1:[0-9]+$')
    - name: the store has labelled series from the exporter, the workers and the router
      http:
        url: "{{{{ telemetry_query_url }}}}/api/v1/query?query={{{{ promql | urlencode }}}}"
      vars:
        promql: '{QUERY}'
      register: series
      until: series.json.data.result | length >= 5
      retries: 60
      delay: 0.5
      run_once: true
    - name: keep the answer for the test
      copy:
        content: "{{{{ series.json }}}}"
        dest: "{{{{ playbook_dir }}}}/series.json"
      run_once: true
"""


def test_telemetry_ships_labelled_series_to_victoria_metrics(work: Workdir) -> None:
    need_binaries("victoria-metrics", "vmagent", "prometheus-node-exporter")
    worker_port, base = port_base(2), port_base(24)
    work.write("pb.yaml", telemetry_playbook(worker_port, base, check=CHECK))
    proc = work.smlplay("run", "pb.yaml", timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert work.state()["status"] == "ok"

    run_id = work.last_run().name
    result = json.loads((work.path / "series.json").read_text())["data"]["result"]
    labels = [r["metric"] for r in result]
    seen = {(m["job"], m["node"]) for m in labels}
    assert {("node-exporter", "node1"), ("node-exporter", "node2"), ("workers", "node1"), ("workers", "node2"), ("router", "node1")} <= seen, labels
    for m in labels:
        assert m["slurm_job_id"] == run_id  # the local scheduler has no job id: the run id stands in
        assert (m["model"], m["framework"], m["team"]) == ("llama", "sim", "sidecar-test")
        assert m["user"] == (os.environ.get("USER") or pwd.getpwuid(os.getuid()).pw_name)

    # sidecars are tier 2: torn down after the workers (tier 1); none outlives the run
    tiers = [(e["tier"], e["label"]) for e in work.events() if e["event"] == "teardown_step"]
    assert [t for t, _ in tiers] == sorted(t for t, _ in tiers), tiers
    assert {label.split("@")[0] for t, label in tiers if t == 2} == {
        "stop victoria-metrics", "stop vmagent", "stop node-exporter",
    }, tiers
    assert_torn_down(work, (base, base + 1, base + 2, base + 10, base + 11, worker_port, worker_port + 1))

    scripts = sorted((work.last_run() / "scripts").glob("*/telemetry-*.sh"))
    assert {p.name for p in scripts} == {
        "telemetry-victoria-metrics.sh",
        "telemetry-node-exporter.sh",
        "telemetry-vmagent.sh",
    }
    shellcheck(scripts)
    scrape = (work.last_run() / "telemetry" / "node1" / "scrape.yml").read_text()
    assert f"127.0.0.1:{worker_port}" in scrape and "job_name: router" in scrape


def test_telemetry_dry_run_shows_scrape_config_and_commands(work: Workdir) -> None:
    worker_port, base = 31000, 32000
    work.write("pb.yaml", telemetry_playbook(worker_port, base, telemetry_extra="      exporter: node"))
    proc = work.smlplay("run", "pb.yaml", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    # the scrape config of node2: its exporter and its own worker leader, no router
    node2 = out[out.index("  HOST node2", out.index("PLAY [telemetry on every node]")):]
    assert "- job_name: node-exporter" in node2 and f'targets: ["127.0.0.1:{base + 10 + 1}"]' in node2
    assert f'targets: ["127.0.0.1:{worker_port + 1}"]' in node2
    assert '"worker": "workers-1"' in node2 and "job_name: router" not in node2.split("start vmagent")[0]
    # vmagent's command line with the remote-write labels; the store only on node1
    assert f"-httpListenAddr=127.0.0.1:{base + 2}" in node2
    assert f"-remoteWrite.url=http://127.0.0.1:{base}/api/v1/write" in node2
    for label in ("'-remoteWrite.label=slurm_job_id=<run-id>'", "-remoteWrite.label=model=llama",
                  "-remoteWrite.label=node=node2", "-remoteWrite.label=framework=sim", "-remoteWrite.label=team=sidecar-test",
                  '"-remoteWrite.label=user=${user}"'):
        assert label in node2, label
    assert "start 'vmagent' (not critical, tier 2): exec bash" in node2
    assert "start 'victoria-metrics'" not in node2
    node1 = out[out.index("  HOST node1", out.index("PLAY [telemetry on every node]")): out.index("  HOST node2", out.index("PLAY [telemetry on every node]"))]
    assert "start 'victoria-metrics' (not critical, tier 2)" in node1 and "-search.latencyOffset=1s" in node1
    assert f"http GET http://127.0.0.1:{base}/health" in node1
    assert "- job_name: router" in node1 and f"- targets: [\"127.0.0.1:{worker_port}\"]" in node1

    # exporter auto: a dry-run cannot look for /dev/nvidia0, so it shows both exporters with
    # the condition the node decides at run time
    auto = work.smlplay("run", "pb.yaml", "--dry-run", "-e", "telemetry.exporter=auto")
    assert auto.returncode == 0, auto.stdout + auto.stderr
    assert "exporter `auto` is resolved on the node when the role runs" in auto.stdout
    assert "if telemetry_cfg.enabled | bool and telemetry_probe.rc == 0 and telemetry_exporter == 'dcgm'" in auto.stdout
    assert "if telemetry_cfg.enabled | bool and telemetry_probe.rc == 0 and telemetry_exporter == 'node'" in auto.stdout

    # every launch script the role can render (the DCGM one too, with all optional flags)
    # passes bash -n and shellcheck; the scrape configs are YAML of the expected shape
    extra = (
        "      exporter: dcgm\n      dcgm_counters: /etc/dcgm exporter/counters.csv\n"
        "      dcgm_exporter_args: ['--collect-interval', '1000']\n"
        "      node_exporter_args: ['--collector.disable-defaults', '--collector.cpu']\n"
        "      vmagent_args: ['-remoteWrite.flushInterval=2s']\n      victoria_metrics_args: ['-dedup.minScrapeInterval=1s']\n"
        "      user: \"o'neil\""
    )
    work.write("pb.yaml", telemetry_playbook(worker_port, base, telemetry_extra=extra))
    for exporter in ("dcgm", "node"):
        out_dir = work.path / f"plan-{exporter}"
        proc = work.smlplay("run", "pb.yaml", "--dry-run", "--out", str(out_dir), "-e", f"telemetry.exporter={exporter}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        scripts = rendered(out_dir, ".sh")
        assert {name.split("/")[1] for name in scripts} == {
            "telemetry-victoria-metrics.sh", f"telemetry-{exporter}-exporter.sh", "telemetry-vmagent.sh",
        }, scripts
        for name, text in scripts.items():
            path = work.path / "rendered" / exporter / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        shellcheck(sorted((work.path / "rendered" / exporter).glob("*/*.sh")))
        for name, text in rendered(out_dir, "scrape.yml").items():
            config = yaml.safe_load(text)
            jobs = {job["job_name"]: job for job in config["scrape_configs"]}
            assert set(jobs) == {f"{exporter}-exporter", "workers"} | ({"router"} if name.startswith("node1/") else set())
    dcgm = rendered(work.path / "plan-dcgm", ".sh")["node1/telemetry-dcgm-exporter.sh"]
    assert "-f '/etc/dcgm exporter/counters.csv'" in dcgm and f"--address 127.0.0.1:{base + 20}" in dcgm
    assert "--collect-interval \\\n  1000" in dcgm
    vmagent = rendered(work.path / "plan-node", ".sh")["node2/telemetry-vmagent.sh"]
    assert "'-remoteWrite.label=user=o'\"'\"'neil'" in vmagent and "${user}" not in vmagent
    assert "-remoteWrite.flushInterval=2s \\\n  -loggerLevel=INFO" in vmagent

    # telemetry: false (also from the command line) starts nothing
    off = work.smlplay("run", "pb.yaml", "--dry-run", "-e", "telemetry=false")
    assert off.returncode == 0, off.stdout + off.stderr
    assert "vmagent" not in off.stdout and "node-exporter" not in off.stdout


def test_telemetry_missing_binary_fails_naming_the_package(work: Workdir) -> None:
    worker_port, base = port_base(2), port_base(24)
    work.write(
        "pb.yaml",
        telemetry_playbook(worker_port, base, telemetry_extra="      exporter: none\n      vmagent_bin: /nonexistent/vmagent"),
    )
    proc = work.smlplay("run", "pb.yaml", timeout=120)
    assert proc.returncode != 0
    assert "telemetry on node1: vmagent '/nonexistent/vmagent' (telemetry.vmagent_bin) is not installed" in proc.stdout
    assert "Debian package victoria-metrics" in proc.stdout
    started = {e["result"].get("name") for e in work.events() if e["event"] == "task_result" and e.get("result", {}).get("pid")}
    assert not ({"vmagent", "victoria-metrics", "node-exporter"} & started)
    assert_torn_down(work)


# --- opentela-register ----------------------------------------------------------------------

SIM_SCRIPT = """#!/usr/bin/env bash
set -euo pipefail
exec {{ smlplay_python }} -m engine.sim --model-path m --served-model-name llama --host 127.0.0.1 --port {{ sim_port }}
"""


def opentela_playbook(sim_port: int, api_port: int, script: str = "{{ run_dir }}/scripts/localhost/sim.sh") -> str:
    return f"""
- name: a simulated server wrapped in otela
  hosts: localhost
  vars:
    framework: sim
    sim_port: {sim_port}
    script: "{script}"
    opentela:
      bootstrap_addr: {BOOTSTRAP}
      api_port: {api_port}
      health_interval: 200ms
  tasks:
    - name: stage the server's launch script
      template: {{src: sim.sh.j2, dest: "{{{{ script }}}}", mode: "0755"}}
    - name: the command that starts it
      include_role: {{name: opentela-register, tasks_from: command}}
      vars:
        otela_script: "{{{{ script }}}}"
        otela_service_port: "{{{{ sim_port }}}}"
    - name: start the server
      process:
        name: sim
        cmd: "{{{{ otela_launch_cmd }}}}"
        env: "{{{{ otela_env }}}}"
        grace: "{{{{ otela_grace }}}}"
        ports: "{{{{ [sim_port] + otela_ports }}}}"
      health:
        http: "http://127.0.0.1:{{{{ sim_port }}}}/health"
        timeout: 60s
        interval: 0.2
    - name: the peer table lists the service
      http: {{url: "{{{{ otela_api_url }}}}/v1/dnt/table"}}
      register: table
      until: (table.json.values() | list | first).service | length > 0
      retries: 100
      delay: 0.1
      when: otela_api_url | length > 0
    - name: keep the table for the test
      copy: {{content: "{{{{ table.json }}}}", dest: "{{{{ playbook_dir }}}}/table.json"}}
      when: otela_api_url | length > 0
"""


def test_opentela_wraps_server_registers_and_deregisters(work: Workdir) -> None:
    sim_port, api_port = port_base(1), port_base(1)
    work.write("templates/sim.sh.j2", SIM_SCRIPT)
    work.write("pb.yaml", opentela_playbook(sim_port, api_port))
    proc = work.smlplay("run", "pb.yaml", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    table = json.loads((work.path / "table.json").read_text())
    (peer,) = table.values()
    assert [(s["name"], s["port"], s["identity_group"]) for s in peer["service"]] == [("llm", str(sim_port), ["model=llama"])]

    run = work.last_run()
    events = [json.loads(line) for line in (run / "otela-record.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["started", "registered", "deregistered", "subprocess_exit"]
    started = events[0]
    script = str(run / "scripts" / "localhost" / "sim.sh")
    assert started["argv"] == [
        "start", "--bootstrap.addr", BOOTSTRAP, "--service.name", "llm", "--service.port", str(sim_port),
        "--service.health_interval", "200ms", "--subprocess", f"bash {script}",
    ]
    assert started["subprocess_argv"] == ["bash", script]
    assert started["flags"]["api.port"] == api_port
    assert events[2]["reason"] == "got SIGTERM" and events[2]["was_registered"] is True
    assert_torn_down(work)
    assert not pid_alive(started["subprocess_pid"])
    shellcheck([Path(script)])


def test_opentela_switched_off_renders_plain_bash(work: Workdir) -> None:
    work.write("templates/sim.sh.j2", SIM_SCRIPT)
    work.write("pb.yaml", opentela_playbook(31500, 31510))
    for switch in (["-e", "opentela=false"], ["-e", '{"opentela": {"enabled": false}}']):
        proc = work.smlplay("run", "pb.yaml", "--dry-run", *switch)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "start 'sim' (critical, tier 1): exec bash '/" in proc.stdout
        assert "otela" not in proc.stdout.split("start 'sim'")[1].splitlines()[0]
    on = work.smlplay("run", "pb.yaml", "--dry-run")
    assert on.returncode == 0, on.stdout + on.stderr
    line = next(x for x in on.stdout.splitlines() if "start 'sim'" in x)
    assert re.search(r"OTELA_STANDIN_API_PORT=31510 OTELA_STANDIN_RECORD=\S+/otela-record.jsonl exec \S+ -m engine.sim.otela start", line)
    assert f"--bootstrap.addr {BOOTSTRAP} --service.name llm --service.port 31500" in line
    assert line.endswith("--subprocess 'bash /tmp/" + line.split("--subprocess 'bash /tmp/")[1]) and "/scripts/localhost/sim.sh'" in line


def test_opentela_refuses_bad_input_before_starting_anything(work: Workdir) -> None:
    work.write("templates/sim.sh.j2", SIM_SCRIPT)
    work.write("pb.yaml", opentela_playbook(port_base(1), port_base(1), script="{{ run_dir }}/my scripts/sim.sh"))
    proc = work.smlplay("run", "pb.yaml", timeout=60)
    assert proc.returncode == 2  # refused while rendering the plan
    assert "path of a staged launch script without whitespace" in proc.stdout + proc.stderr
    assert not started_pids(work)
    work.write("pb.yaml", opentela_playbook(port_base(1), port_base(1)))
    proc = work.smlplay("run", "pb.yaml", "-e", "opentela.bootstrap_addr=", timeout=60)
    assert proc.returncode == 2
    assert "opentela.bootstrap_addr must be the multiaddr of a bootstrap peer" in proc.stdout + proc.stderr
    assert not started_pids(work)


def test_opentela_metrics_only_peer_per_node(work: Workdir) -> None:
    api = port_base(2)
    work.write("pb.yaml", ALLOCATE + f"""
- name: metrics-only peers
  hosts: nodes
  vars:
    framework: sim
    opentela: {{bootstrap_addr: "{BOOTSTRAP}", api_port: {api}}}
  roles:
    - opentela-register
  post_tasks:
    - name: each peer's API answers on its own port
      http: {{url: "http://127.0.0.1:{{{{ {api} + node_slot }}}}/v1/self"}}
      register: peer
    - assert: {{that: [peer.json.standin]}}
""")
    dry = work.smlplay("run", "pb.yaml", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "start 'otela' (not critical, tier 2)" in dry.stdout
    assert f"--bootstrap.addr {BOOTSTRAP}" in dry.stdout and "--service.name" not in dry.stdout

    proc = work.smlplay("run", "pb.yaml", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = [json.loads(line) for line in (work.last_run() / "otela-record.jsonl").read_text().splitlines()]
    started = [e for e in events if e["event"] == "started"]
    assert sorted(e["flags"]["api.port"] for e in started) == [api, api + 1]
    assert all(e["argv"] == ["start", "--bootstrap.addr", BOOTSTRAP] for e in started)
    deregistered = [e for e in events if e["event"] == "deregistered"]
    assert len(deregistered) == 2 and all(not e["was_registered"] for e in deregistered)
    assert_torn_down(work)
    shellcheck(sorted((work.last_run() / "scripts").glob("*/otela-peer.sh")))
