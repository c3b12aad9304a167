"""Real playbooks through the real CLI, with real background processes and HTTP."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.e2e.conftest import Workdir, free_port, pid_alive

pytestmark = pytest.mark.e2e


def service_playbook(port: int, after: str = "") -> str:
    return f"""
- name: service
  hosts: localhost
  tasks:
    - name: start web
      process:
        name: web
        cmd: exec python3 -m http.server {port} --bind 127.0.0.1
      health:
        http: http://127.0.0.1:{port}/
        timeout: 30s
        interval: 0.2
      register: web
      notify: note
{after}
  handlers:
    - name: note
      shell: echo handler-ran >> handler.txt
"""


def test_service_health_check_and_teardown(work: Workdir) -> None:
    port = free_port()
    query = f"""
    - name: query it
      http: {{url: "http://127.0.0.1:{{{{ 1 * {port} }}}}/", return_content: true}}
      register: page
    - assert: {{that: ["page.status == 200", "web.health.healthy"]}}
"""
    work.write("pb.yaml", service_playbook(port, query))
    proc = work.smlplay("run", "pb.yaml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PLAY RECAP" in proc.stdout and "failed=0" in proc.stdout
    state = work.state()
    assert state["status"] == "ok"
    assert state["processes"] == [] and state["teardown"] == []
    pid = next(e for e in work.events() if e["event"] == "task_result" and e["task"] == "start web")["result"]["pid"]
    assert not pid_alive(pid)
    assert (work.path / "handler.txt").read_text() == "handler-ran\n"
    assert (work.last_run() / "plan.json").exists()
    assert (work.last_run() / "playbook.yaml").exists()


def test_dead_critical_process_fails_the_play_with_its_log(work: Workdir) -> None:
    work.write("pb.yaml", """
- name: dies
  hosts: localhost
  tasks:
    - name: fragile
      process:
        name: fragile
        cmd: "echo 'loading model'; sleep 1; echo 'CUDA out of memory' >&2; exit 3"
    - name: long wait
      pause: {seconds: 60}
    - name: never reached
      debug: {msg: unreachable}
""")
    start = time.monotonic()
    proc = work.smlplay("run", "pb.yaml")
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stdout
    assert elapsed < 30
    assert "CUDA out of memory" in proc.stdout
    assert "fragile" in proc.stdout
    assert "never reached" not in proc.stdout


def test_health_wait_fails_fast_when_process_dies(work: Workdir) -> None:
    work.write("pb.yaml", """
- hosts: localhost
  tasks:
    - name: bad server
      process:
        name: bad
        cmd: "echo 'address already in use'; exit 1"
      health:
        tcp: 1
        timeout: 10m
        interval: 0.2
""")
    start = time.monotonic()
    proc = work.smlplay("run", "pb.yaml")
    assert proc.returncode == 1
    assert time.monotonic() - start < 20
    assert "died while waiting" in proc.stdout and "address already in use" in proc.stdout


def test_ctrl_c_tears_down_and_exits_130(work: Workdir) -> None:
    port = free_port()
    work.write("pb.yaml", service_playbook(port, """
    - name: wait forever
      pause: {minutes: 10}
"""))
    proc = work.popen("run", "pb.yaml", "--output", "json")
    pid = None
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "task_result" and event["task"] == "start web":
            pid = event["result"]["pid"]
        if event["event"] == "task_start" and event["task"] == "wait forever":
            break
        assert time.monotonic() < deadline
    assert pid is not None and pid_alive(pid)
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, rest
    assert not pid_alive(pid)
    state = work.state()
    assert state["status"] == "interrupted"
    assert state["processes"] == []
    # the notified handler ran during teardown
    assert (work.path / "handler.txt").exists()


def test_failure_runs_handlers_and_rescue(work: Workdir) -> None:
    work.write("pb.yaml", """
- hosts: localhost
  tasks:
    - block:
        - name: breaks
          command: "false"
      rescue:
        - name: rescued
          shell: echo rescued > rescued.txt
      always:
        - name: always
          shell: echo always > always.txt
    - name: changes
      shell: "true"
      notify: cleanup
    - name: then fails
      fail: {msg: boom}
  handlers:
    - name: cleanup
      shell: echo cleaned > cleaned.txt
""")
    proc = work.smlplay("run", "pb.yaml")
    assert proc.returncode == 1
    assert "fatal: [localhost]: FAILED! => boom" in proc.stdout
    for name in ("rescued", "always", "cleaned"):
        assert (work.path / f"{name}.txt").exists(), name
    assert "rescued=1" in proc.stdout


def test_keep_running_then_down(work: Workdir) -> None:
    port = free_port()
    work.write("pb.yaml", service_playbook(port))
    proc = work.smlplay("run", "pb.yaml", "--keep-running")
    assert proc.returncode == 0, proc.stdout
    state = work.state()
    assert state["status"] == "kept-running"
    [record] = state["processes"]
    pid = record["handle"]["pid"]
    assert pid_alive(pid)
    status = work.smlplay("status", work.last_run().name)
    assert "web@localhost" in status.stdout
    down = work.smlplay("down", work.last_run().name)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not pid_alive(pid)
    assert work.state()["status"] == "down"


def test_dry_run_is_deterministic_and_runs_nothing(work: Workdir) -> None:
    work.write("pb.yaml", service_playbook(18999, """
    - name: use registered
      command: echo {{ web.pid }}
"""))
    first = work.smlplay("run", "pb.yaml", "--dry-run", "--format", "json")
    second = work.smlplay("render", "pb.yaml", "--format", "json")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert "<registered: web.pid>" in first.stdout
    assert not (work.path / "runs").exists()
    out = work.smlplay("render", "pb.yaml", "--out", "plan")
    assert (work.path / "plan" / "plan.txt").exists()
    assert "18999" in out.stdout
