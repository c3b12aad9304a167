"""The real CLI against the real local cluster: SSH to the login host, allocations through
it as a gateway, srun steps in the foreground and in the background, failures, Ctrl-C.

Every test runs `python -m engine run` on a playbook from ``playbooks/`` and checks what
happened in the world: files, ``squeue``/``scontrol``, processes, HTTP. The ``cli`` fixture
(conftest.py) gives each test a marker that its playbooks put into job names and command
lines; after the test it checks that no job, step, process or SSH session of the test is
left, and cleans up either way.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import (
    LOCAL_SLURM_INVENTORY,
    PLAYBOOKS,
    Cli,
    EngineRun,
    free_ports,
    hold_nodes,
    job_ended,
    processes,
    squeue_state,
)

pytestmark = pytest.mark.cluster

TRICKY = "a b  'single' \"double\" $(echo pwned) ; echo injected `id` \\ 100% * ~ {x} \\n"


def _ok(run: EngineRun) -> None:
    assert run.rc == 0, str(run)
    assert "Traceback" not in run.output, str(run)


def _ancestry(pid: int) -> str:
    """The command lines from ``pid`` up to PID 1, one per line."""
    table = {p.pid: p for p in processes()}
    lines = []
    while pid in table and pid > 1:
        lines.append(table[pid].cmdline)
        pid = table[pid].ppid
    return "\n".join(lines)


def _servers(cli: Cli) -> list[Any]:
    """This test's http.server processes (and the srun clients that carry them)."""
    return [p for p in processes() if "http.server" in p.cmdline and cli.marker in p.cmdline]


# ----------------------------------------------------------------------------- 1. ssh


def test_commands_and_files_over_ssh(cli: Cli) -> None:
    payload = cli.root / "payload.bin"
    payload.write_bytes(bytes(range(256)) * 64 + b"\n end")
    run = cli.run(
        "ssh_basics.yaml",
        inventory=cli.inventory(),
        extra_vars={"payload": str(payload), "fail_rc": 3},
    )
    assert run.rc == 1, str(run)
    assert "Traceback" not in run.output

    cmd = run.results("argv command")["login"]
    assert cmd["rc"] == 0
    assert cmd["stdout"] == "two  words|hi 'single' \"double\" $(echo subst) ; echo semi `tick` \\ back|"
    assert run.results("split command")["login"]["stdout"] == f"{cli.marker} quoted arg\n"

    sh = run.results("shell")["login"]
    # it ran in a session of the loopback sshd, not on this process's own shell
    assert sh["stdout"].splitlines()[0] == f"via=127.0.0.1 user={cli.ssh.user}"
    assert sh["stdout"].splitlines()[1] == "hi 'single' \"double\" $(echo subst) ; echo semi `tick` \\ back"
    assert sh["stderr"] == "to stderr\n" and sh["rc"] == 0

    conf = cli.out / "conf" / "basics.conf"
    assert conf.read_text() == (
        f"host=login\nmarker={cli.marker}\n"
        "greeting=hi 'single' \"double\" $(echo subst) ; echo semi `tick` \\ back\n"
        "items=1,2,3,.\n"
    )
    assert conf.stat().st_mode & 0o777 == 0o640
    assert run.results("template")["login"]["_status"] == "changed"
    assert run.results("template unchanged")["login"]["_status"] == "ok"

    assert (cli.out / "copy" / "content.txt").read_text() == f"content {cli.marker}\n"
    copied = cli.out / "copy" / "payload.bin"
    assert copied.read_bytes() == payload.read_bytes()
    assert copied.stat().st_mode & 0o777 == 0o600
    digest = hashlib.sha256(payload.read_bytes()).hexdigest()
    assert run.results("read back")["login"]["stdout"].split()[0] == digest

    failing = run.results("failing command")["login"]
    assert failing["_status"] == "failed" and failing["rc"] == 3
    assert failing["stdout"] == f"about to fail {cli.marker}\n"
    assert "non-zero return code 3" in failing["msg"]
    assert run.results("after the failure") == {}
    assert not (cli.out / "after-failure").exists()
    assert run.recap()["login"]["failed"] == 1


def test_failing_command_over_ssh_in_text_mode(cli: Cli) -> None:
    payload = cli.root / "payload.bin"
    payload.write_bytes(b"x")
    run = cli.run(
        "ssh_basics.yaml",
        inventory=cli.inventory(),
        extra_vars={"payload": str(payload), "fail_rc": 5},
        json_output=False,
    )
    assert run.rc == 1, str(run)
    assert "fatal: [login]: FAILED!" in run.stdout and "non-zero return code 5" in run.stdout
    (recap,) = [line.split() for line in run.stdout.splitlines() if line.startswith("login ")]
    assert {"ok=8", "changed=7", "failed=1", "unreachable=0"} <= set(recap), str(run)
    assert "Traceback" not in run.output


def test_background_process_over_ssh(cli: Cli) -> None:
    (port,) = free_ports()
    (cli.out / "probe.txt").write_text(f"probe {cli.marker}\n")
    run = cli.run("ssh_process.yaml", inventory=cli.inventory(), extra_vars={"port": port, "fetches": 0})
    _ok(run)
    web = run.results("record")["login"]["msg"]
    assert web["health"]["healthy"] is True
    assert web["process"]["transport"] == "ssh" and web["process"]["host"] == "login"
    pid = web["process"]["handle"]["pid"]
    assert pid not in {p.pid for p in processes()}  # stopped at the end of the run
    teardown = [(e["label"], e["status"], e.get("detail")) for e in run.events() if e["event"] == "teardown_step"]
    assert teardown == [("stop web@login", "ok", "stopped")]
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_http_requests_through_ssh_do_not_lose_the_body(cli: Cli) -> None:
    (port,) = free_ports()
    body = f"probe {cli.marker}\n"
    (cli.out / "probe.txt").write_text(body)
    run = cli.run("ssh_process.yaml", inventory=cli.inventory(), extra_vars={"port": port, "fetches": 80})
    failures = [r["msg"] for r in run.results("fetch").values() if r["_status"] == "failed"]
    assert run.rc == 0 and not failures, failures
    assert run.results("pages")["login"]["msg"] == [body] * 80


# ----------------------------------------------------------------------------- 2. allocation


LAYOUTS = {
    2: {"prefill": 1, "decode": 1, "router": {"count": 1, "on": "prefill"}},
    3: {"prefill": 2, "decode": 1, "router": {"count": 1, "on": "prefill"}},
    4: {
        "prefill": 2,
        "decode": 2,
        "router": {"count": 1, "on": "prefill"},
        "bench": {"count": 1, "on": "decode"},
    },
}


@pytest.mark.parametrize("count", sorted(LAYOUTS))
def test_allocation_through_the_ssh_gateway(cli: Cli, count: int) -> None:
    layout = LAYOUTS[count]
    run = cli.run("allocate.yaml", extra_vars={"layout": layout, "nodes": count})
    _ok(run)
    (job,) = run.job_ids

    # the nodes are real Slurm nodes, in allocation order, split by the layout
    groups = run.results("groups")["login"]["msg"]
    nodes = groups["nodes"]
    assert len(nodes) == count and len(set(nodes)) == count
    assert set(nodes) <= {"n1", "n2", "n3", "n4"}
    fresh = [g for g, v in layout.items() if not isinstance(v, dict)]
    taken = [n for g in fresh for n in groups[g]]
    assert taken == nodes  # fresh groups take every node once, top to bottom
    assert groups["prefill"] == nodes[: layout["prefill"]]  # type: ignore[index]
    assert groups["router"] == groups["prefill"][:1]
    if "bench" in layout:
        assert groups["bench"] == groups["decode"][:1]

    # while the run lasted, Slurm held exactly these nodes in one job named by the marker
    queue = run.results("queue")["login"]["stdout"].strip()
    n_nodes, state, name, _nodelist = queue.split("|")
    assert (int(n_nodes), state, name) == (count, "RUNNING", cli.marker)

    # each node is reached as a step of that job on that node
    where = run.results("where")
    assert sorted(where) == sorted(nodes)
    for index, node in enumerate(nodes):
        result = where[node]
        assert result["stderr"] == ""
        slurmd, slurm_job, host, node_index, slot, address, job_var, node_var, group_names = (
            result["stdout"].strip().split("|")
        )
        assert slurmd == host == node_var == node
        assert slurm_job == job_var == job
        assert int(node_index) == index
        assert address == "127.0.0.1"  # NodeAddr of the test cluster
        assert int(slot) == index  # all test nodes share 127.0.0.1: slot = rank among them
        expected = {"nodes", *(g for g, members in groups.items() if node in members and g != "all")}
        assert set(group_names.split(",")) == expected

    release = [e for e in run.events() if e["event"] == "teardown_step"]
    assert [(e["label"], e["status"]) for e in release] == [
        (f"release the allocation (scancel {job})", "ok")
    ]
    assert job_ended(job)


# ----------------------------------------------------------------------------- 3. foreground


def test_foreground_steps_on_chosen_nodes(cli: Cli) -> None:
    run = cli.run("srun_steps.yaml", extra_vars={"tricky": TRICKY})
    _ok(run)
    (job,) = run.job_ids
    # "2 node(s) in job J: first: n1; middle: n2; third: n3"
    placed = run.results("allocate")["login"]["msg"].split(": ", 1)[1]
    layout = {g: n for g, n in (part.split(": ") for part in placed.split("; "))}
    where = run.results("where")
    alloc_nodes = sorted(where)
    assert alloc_nodes == sorted([layout["first"], layout["third"]])  # never the middle one
    assert layout["middle"] not in alloc_nodes
    for node, result in where.items():
        # the step ran on the node it was meant for, in the job, with the job's GPUs;
        # srun's own notices never reach the result
        assert result["stdout"] == f"{node}|{node}|{job}|0,1\n"
        assert result["stderr"] == ""

    expect = f"{TRICKY}|"
    for node in alloc_nodes:
        assert run.results("environment")[node]["stdout"] == f"{TRICKY}|plain|"
        assert run.results("argv")[node]["stdout"] == f"{expect}two  words|"
        assert run.results("quote filter")[node]["stdout"] == expect
        assert run.results("stdin")[node]["stdout"] == TRICKY
        for task in ("environment", "argv", "quote filter", "stdin"):
            assert run.results(task)[node]["stderr"] == "", task
        assert (cli.out / node / "node.txt").read_text() == f"node={node}\njob={job}\ntricky={TRICKY}\n"
        assert (cli.out / node / "node.txt").stat().st_mode & 0o777 == 0o600
        assert (cli.out / node / "copy.txt").read_text() == TRICKY

        failing = run.results("failing step")[node]
        assert (failing["rc"], failing["stdout"]) == (7, "out\n")
        # srun adds its own line about the exit code to stderr (never to stdout)
        lines = failing["stderr"].splitlines()
        assert "err" in lines
        assert all(line.startswith("srun: ") for line in lines if line != "err"), lines
        assert failing["_status"] == "failed"

        slow = run.results("slow step")[node]
        assert slow["rc"] == 124 and slow["_status"] == "failed"
        assert slow["msg"] == "command timed out after 1.0s"

    # the timed-out commands were killed, not left running: besides the batch step only
    # the nodes' shell steps (one per node, where foreground commands run) are left
    steps = run.results("steps left")["login"]["stdout"].splitlines()
    assert [s.split()[0] for s in steps if "Name=smlplay-shell" not in s] == [f"StepId={job}.batch"]
    assert len([s for s in steps if "Name=smlplay-shell" in s]) <= len(alloc_nodes)
    assert job_ended(job)


# ----------------------------------------------------------------------------- 4. background


def test_background_steps_with_health_checks(cli: Cli) -> None:
    ports = free_ports(2)
    bg = cli.popen("srun_background.yaml", extra_vars={"web_ports": ports})
    try:
        bg.wait_for_event(lambda e: e["event"] == "task_start" and e["task"] == "hold")
        # the servers answer from this machine, on node_address and each node's own port
        bodies = {}
        for port in ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/probe.txt", timeout=10) as r:
                bodies[port] = r.read().decode()
        # ... from inside a Slurm step: slurmstepd is an ancestor of each server
        servers = [p for p in _servers(cli) if "python" in p.cmdline.split()[0]]
        assert len(servers) == 2, servers
        for server in servers:
            assert "slurmstepd" in _ancestry(server.pid), _ancestry(server.pid)
        # each server is a named step of the job, on its own node
        (job,) = cli.job_ids
        steps = subprocess.run(
            ["squeue", "-h", "-s", "-j", job, "-o", "%i|%j|%N"], capture_output=True, text=True, check=True
        ).stdout.split()
        steps = [s for s in steps if s.split("|")[1] not in ("batch", "smlplay-shell")]
        (cli.out / "go").touch()
        run = bg.finish()
    finally:
        (cli.out / "go").touch()  # let the run tear down by itself, whatever happened
        bg.finish_quietly()
    _ok(run)
    assert run.job_ids == [job]
    served = {h: r["msg"] for h, r in run.results("web record").items()}
    web_nodes = sorted(served)
    assert len(web_nodes) == 2
    for node in web_nodes:
        result = served[node]
        assert result["health"]["healthy"] is True
        assert result["process"]["transport"] == "srun"
        assert result["client"]["host"] == "login" and result["client"]["transport"] == "ssh"
        assert result["step_name"] == f"web.{node}" and result["node"] == node
        assert result["job_id"] == job
    assert sorted(bodies.values()) == sorted(f"served by {n} {cli.marker}\n" for n in web_nodes)
    assert sorted(s.split("|", 1)[1] for s in steps) == sorted(f"web.{n}|{n}" for n in web_nodes)
    assert {s.split("|")[0] for s in steps} == {served[n]["step"] for n in web_nodes}
    # scontrol, from inside the playbook, agrees
    shown = run.results("steps")["login"]["stdout"]
    for node in web_nodes:
        assert f"StepId={served[node]['step']} " in shown and f"Name=web.{node}" in shown

    teardown = [(e["label"], e["status"], e.get("detail")) for e in run.events() if e["event"] == "teardown_step"]
    assert teardown[-1] == (f"release the allocation (scancel {job})", "ok", "done")
    assert sorted(t[:2] for t in teardown[:-1]) == sorted((f"stop web@{n}", "ok") for n in web_nodes)
    assert all(t[2] == "stopped" for t in teardown[:-1])
    # nothing answers any more and no http.server of this test is left
    for port in ports:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
    assert _servers(cli) == []


# ----------------------------------------------------------------------------- 5. a death


def test_a_dying_background_step_fails_the_run(cli: Cli) -> None:
    run = cli.run("srun_dies.yaml", json_output=False, timeout=90)
    assert run.rc == 1, str(run)
    assert run.elapsed < 30, str(run)
    assert "Traceback" not in run.output
    (job,) = run.job_ids
    out = run.stdout
    assert "critical process 'fragile'" in out and "died" in out
    # the log tail of the step (written by slurmstepd on the node) is shown
    assert f"loading weights {cli.marker}" in out
    assert f"CUDA out of memory {cli.marker}" in out
    assert "never reached" not in out and not (cli.out / "never-reached").exists()
    # teardown still stops the other steps and releases the allocation
    assert f"release the allocation (scancel {job}) (done)" in out
    stopped = re.findall(r"stop steady@(\S+) \(stopped\)", out)
    assert len(set(stopped)) == 2 and set(stopped) <= {"n1", "n2", "n3", "n4"}, out
    assert re.search(r"critical process 'fragile' on (n[1-4]) died", out).group(1) in stopped  # type: ignore[union-attr]
    assert "status: failed" in out
    assert job_ended(job)


# ----------------------------------------------------------------------------- 6. unreachable


def _dead_login(cli: Cli, why: str) -> dict[str, Any]:
    if why == "refused":
        return cli.login_vars(ssh_port=1)
    empty = cli.root / "empty_known_hosts"
    empty.write_text("")
    return cli.login_vars(ssh_known_hosts=str(empty))


@pytest.mark.parametrize(
    ("why", "error"),
    [
        ("refused", "cannot connect to {user}@127.0.0.1:1: connection refused"),
        ("hostkey", "cannot connect to {user}@127.0.0.1:{port}: host key is unknown"),
    ],
)
def test_unreachable_gateway(cli: Cli, why: str, error: str) -> None:
    inventory = cli.inventory({"login": _dead_login(cli, why)})
    run = cli.run("allocate.yaml", inventory=inventory, extra_vars={"nodes": 1}, json_output=False)
    assert run.rc not in (0, 2), str(run)
    assert "Traceback" not in run.output
    message = error.format(user=cli.ssh.user, port=cli.ssh.port)
    assert "fatal: [login]: UNREACHABLE! => host login: " + message in run.stdout, str(run)
    recap = [line.split() for line in run.stdout.splitlines() if line.startswith("login ")]
    assert recap and "unreachable=1" in recap[-1], str(run)
    assert run.job_ids == []
    # no node was allocated, so no node appears anywhere
    assert [line.split()[0] for line in run.stdout.split("PLAY RECAP")[1].splitlines()[1:] if " : " in line] == ["login"]


def test_unreachable_targets_beside_a_reachable_one(cli: Cli) -> None:
    empty = cli.root / "empty_known_hosts"
    empty.write_text("")
    inventory = cli.inventory(
        {
            "login": cli.login_vars(),
            "dead": cli.login_vars(ssh_port=1),
            "stranger": cli.login_vars(ssh_known_hosts=str(empty)),
            # a compute node whose gateway cannot be reached
            "worker": {"connection": "srun", "srun_gateway": "dead", "slurm_job_id": "1", "slurm_node": "n1"},
        }
    )
    playbook = cli.root / "targets.yaml"
    playbook.write_text(
        "- hosts: all\n  tasks:\n"
        f"    - name: hello\n      shell: echo hello {cli.marker}\n"
        "    - name: second\n      shell: echo second\n"
    )
    run = cli.run(playbook, inventory=inventory)
    assert run.rc not in (0, 2), str(run)
    assert "Traceback" not in run.output
    hello = run.results("hello")
    assert hello["login"]["_status"] == "changed" and hello["login"]["stdout"] == f"hello {cli.marker}\n"
    assert run.results("second")["login"]["_status"] == "changed"
    for host in ("dead", "stranger", "worker"):
        assert hello[host]["_status"] == "unreachable", hello[host]
        assert host not in run.results("second")  # an unreachable host is out of the play
    assert "127.0.0.1:1: connection refused" in hello["dead"]["msg"]
    assert "host dead" in hello["dead"]["msg"]
    assert "host key is unknown" in hello["stranger"]["msg"] and "host stranger" in hello["stranger"]["msg"]
    assert "host dead" in hello["worker"]["msg"] and "connection refused" in hello["worker"]["msg"]
    recap = run.recap()
    for host in ("dead", "stranger", "worker"):
        assert recap[host].get("unreachable") == 1, recap
    assert recap["login"].get("ok") == 2 and not recap["login"].get("unreachable")


# ----------------------------------------------------------------------------- 7. rejected


@pytest.mark.parametrize(
    ("request_", "cause", "stderr"),
    [
        ({"nodes": 10}, "the partition is smaller than the request", "More processors requested than permitted"),
        ({"nodes": 1, "gpus": 5}, "no node in the partition can satisfy the request", "Requested node configuration is not available"),
        ({"nodes": 1, "partition": "nope"}, "the partition does not exist", "Invalid partition name specified"),
        ({"nodes": 1, "nodelist": "n9"}, "the node list names a node that is not in the cluster", "Invalid node name specified"),
    ],
    ids=["too-many-nodes", "too-many-gpus", "no-such-partition", "no-such-node"],
)
def test_rejected_allocation(cli: Cli, request_: dict[str, Any], cause: str, stderr: str) -> None:
    run = cli.run("allocate.yaml", extra_vars=request_, json_output=False)
    assert run.rc == 1, str(run)
    assert "Traceback" not in run.output and "internal error" not in run.output
    assert "fatal: [login]: FAILED! => " in run.stdout
    assert f"could not submit the job: {cause}" in run.stdout, str(run)
    assert stderr in run.stdout
    assert "command: sbatch " in run.stdout and "hint: " in run.stdout
    assert run.job_ids == [] and "TEARDOWN" not in run.stdout
    assert "status: failed" in run.stdout


# ----------------------------------------------------------------------------- 8. Ctrl-C


def test_ctrl_c_while_the_allocation_is_pending(cli: Cli) -> None:
    holder = hold_nodes(cli, 1)
    bg = cli.popen("allocate.yaml", extra_vars={"nodes": 4, "timeout": "120s"})
    try:
        event = bg.wait_for_event(lambda e: e["event"] == "health_progress" and "PENDING" in e["message"])
        (job,) = {j for j in cli.job_ids if j != holder}
        assert squeue_state(job) == "PENDING"
        started = time.monotonic()
        bg.proc.send_signal(signal.SIGINT)
        run = bg.finish(timeout=30)
    finally:
        if bg.proc.poll() is None:
            bg.proc.send_signal(signal.SIGINT)
        bg.finish_quietly()
    assert time.monotonic() - started < 10
    assert run.rc == 130, str(run)
    assert "reason Resources" in event["message"]
    assert "Traceback" not in run.output
    events = run.events()
    assert any(e["event"] == "interrupt" and e["signal"] == "SIGINT" for e in events)
    teardown = [(e["label"], e["status"]) for e in events if e["event"] == "teardown_step"]
    assert teardown == [(f"release the allocation (scancel {job})", "ok")]
    assert run.recap()["login"].get("failed") == 1
    assert next(e for e in events if e["event"] == "recap")["status"] == "interrupted"
    assert job_ended(job)
    assert squeue_state(holder) == "RUNNING"  # only our own pending job was cancelled
    subprocess.run(["scancel", holder], check=True)


def test_allocation_timeout_while_pending(cli: Cli) -> None:
    holder = hold_nodes(cli, 1)
    run = cli.run("allocate.yaml", extra_vars={"nodes": 4, "timeout": "2s"}, json_output=False)
    subprocess.run(["scancel", holder], check=True)
    assert run.rc == 1, str(run)
    (job,) = run.job_ids
    assert f"job {job} did not start within 2s (state PENDING, reason Resources)" in run.stdout
    assert f"release the allocation (scancel {job}) (done)" in run.stdout
    assert job_ended(job)


def test_allocation_timeout_hint_matches_the_teardown(cli: Cli) -> None:
    holder = hold_nodes(cli, 1)
    run = cli.run("allocate.yaml", extra_vars={"nodes": 4, "timeout": "1s"}, json_output=False)
    subprocess.run(["scancel", holder], check=True)
    assert run.rc == 1
    assert "release the allocation" in run.stdout  # the job is cancelled by the run...
    assert "still queued" not in run.stdout  # ...so it is not "still queued"


# ----------------------------------------------------------------------------- 9. local


def test_local_scheduler_virtual_nodes(cli: Cli) -> None:
    base = free_ports(3, consecutive=True)[0]
    run = cli.run("local_nodes.yaml", inventory=None, extra_vars={"base_port": base})
    _ok(run)
    assert run.job_ids == []
    where = run.results("where")
    assert sorted(where) == ["node1", "node2", "node3"]
    rows = {h: r["stdout"].strip().split("|") for h, r in where.items()}
    for index, host in enumerate(["node1", "node2", "node3"]):
        name, address, slot, node_index, _groups, via = rows[host]
        assert (name, address, int(node_index), via) == (host, "127.0.0.1", index, "local")
        assert int(slot) == index  # distinct slots on the shared address
    assert set(rows["node1"][4].split(",")) == {"nodes", "prefill", "router"}
    assert set(rows["node2"][4].split(",")) == {"nodes", "prefill"}
    assert set(rows["node3"][4].split(",")) == {"nodes", "decode"}
    # the servers bound base_port + node_slot and were all healthy
    web = run.results("serve")
    assert sorted(web) == ["node1", "node2", "node3"]
    probes = sorted(r["health"]["probes"][0]["probe"] for r in web.values())
    assert probes == [f"http GET http://127.0.0.1:{base + i}/ -> 200" for i in range(3)]
    assert all(r["health"]["healthy"] for r in web.values())
    assert _servers(cli) == []


def test_local_port_clash_is_an_input_error(cli: Cli) -> None:
    (port,) = free_ports()
    run = cli.run("local_port_clash.yaml", inventory=None, extra_vars={"port": port}, json_output=False)
    assert run.rc == 2, str(run)
    assert "Traceback" not in run.output
    err = run.stderr
    assert f"port {port} on 127.0.0.1 is claimed twice" in err
    # both tasks, with their places in the playbook
    playbook = PLAYBOOKS / "local_port_clash.yaml"
    lines = playbook.read_text().splitlines()
    first = next(i for i, line in enumerate(lines, 1) if "name: first server" in line)
    second = next(i for i, line in enumerate(lines, 1) if "name: second server" in line)
    assert f"by process 'web1' on node1 (task 'first server' ({playbook}:{first}:7))" in err
    assert f"and by process 'web2' on node2\n  in task 'second server' ({playbook}:{second}:7)" in err
    assert "hint: " in err and "node_slot" in err
    # nothing started: not even the tasks before the clash
    assert "TASK [" not in run.stdout
    assert not (cli.out / "started").exists()
    assert not [p for p in processes() if cli.marker in p.cmdline]


def test_templated_port_items(cli: Cli) -> None:
    """``ports: ['{{ base + node_slot }}']``: list items of typed arguments are templatable
    (were rejected at load time before)."""
    port, _ = free_ports(2, consecutive=True)  # node1 and node2 listen on base and base + 1
    playbook = cli.root / "ports.yaml"
    playbook.write_text(
        "- hosts: localhost\n  tasks:\n"
        "    - slurm_allocate: {scheduler: local, nodes: 2}\n"
        "- hosts: nodes\n  tasks:\n"
        "    - name: serve\n      process:\n        name: web\n"
        "        cmd: exec python3 -m http.server {{ base + node_slot }} --bind 127.0.0.1 --directory {{ out }}\n"
        "        ports: ['{{ base + node_slot }}']\n"
        "      health: {http: 'http://127.0.0.1:{{ base + node_slot }}/', timeout: 30s, interval: 0.2}\n"
    )
    run = cli.run(playbook, inventory=None, extra_vars={"base": port})
    assert run.rc == 0, str(run)


# ----------------------------------------------------------------------------- 10. dry-run


def test_dry_run_with_the_slurm_scheduler_submits_nothing(cli: Cli) -> None:
    ports = free_ports(2)
    # the login host cannot even be reached: a dry-run must not try
    dead = cli.inventory({"login": cli.login_vars(ssh_port=1)})
    for inventory in (LOCAL_SLURM_INVENTORY, dead):
        run = cli.run(
            "srun_background.yaml",
            "--dry-run",
            inventory=inventory,
            extra_vars={"web_ports": ports},
            json_output=False,
        )
        _ok(run)
        out = run.stdout
        assert "hosts=web -> slurm-node1, slurm-node2" in out
        assert "via srun step on node <node 1> of job <job id> through login" in out
        assert "via srun step on node <node 2> of job <job id> through login" in out
        assert "$ sbatch " in out and "layout web=2" in out
        assert f"http.server {ports[0]} --bind <address of node 1>" in out
        assert f"http.server {ports[1]} --bind <address of node 2>" in out
        assert "scontrol -o show step <job id>" in out
    as_json = cli.run(
        "srun_background.yaml", "--dry-run", "--format", "json", extra_vars={"web_ports": ports}, json_output=False
    )
    _ok(as_json)
    plan = json.loads(as_json.stdout)
    serve = next(p for p in plan["plays"] if p["name"] == "serve")
    assert serve["hosts"] == ["slurm-node1", "slurm-node2"]
    assert {s["via"] for s in serve["steps"]} == {
        f"srun step on node <node {i}> of job <job id> through login" for i in (1, 2)
    }
    queued = subprocess.run(["squeue", "-h", f"--name={cli.marker}"], capture_output=True, text=True, check=True)
    assert queued.stdout == "" and cli.job_ids == set()
    assert not (cli.out / "site-slurm-node1").exists()


def test_dry_run_writes_no_run_directory(cli: Cli) -> None:
    """Rendering the plan used to make ``runs/<run-id>/logs/<host>/`` for actions that plan
    (slurm_allocate), on every dry-run and every run."""
    run = cli.run("allocate.yaml", "--dry-run", extra_vars={"nodes": 2}, json_output=False)
    _ok(run)
    assert not cli.runs_dir.exists() or list(cli.runs_dir.iterdir()) == []


# ----------------------------------------------------------------------------- more


def test_keep_running_then_down(cli: Cli) -> None:
    run = cli.run("keep_running.yaml", "--keep-running")
    _ok(run)
    (job,) = run.job_ids
    sleeper = {h: r["msg"] for h, r in run.results("record").items()}
    (node,) = sleeper
    step = sleeper[node]["step"]
    assert squeue_state(job) == "RUNNING"
    live = subprocess.run(["squeue", "-h", "-s", "-j", job, "-o", "%i|%j"], capture_output=True, text=True, check=True)
    assert f"{step}|sleeper.{node}" in live.stdout.split()
    run_id = cli.last_run_dir().name
    status = cli.smlplay("status", run_id)
    assert status.rc == 0 and "kept-running" in status.stdout, str(status)
    # the table: the step, and its state asked through the SSH gateway
    row = next(line.split() for line in status.stdout.splitlines() if line.startswith("sleeper "))
    assert row[1:4] == [node, step, "running"] and row[-1] == f"logs/{node}/sleeper.process.log", status.stdout
    down = cli.smlplay("down", run_id)
    assert down.rc == 0, str(down)
    assert f"stop sleeper@{node} (stopped)" in down.stdout
    assert f"release the allocation (scancel {job}) (done)" in down.stdout
    log = Path(sleeper[node]["log"]).read_text()
    assert f"got TERM {cli.marker}" in log  # a graceful stop: the step saw SIGTERM
    assert job_ended(job)


def test_engine_stderr_has_no_library_noise(cli: Cli) -> None:
    """paramiko used to log 'Secsh channel N open FAILED' to stderr for every refused
    direct-tcpip channel (the port check and health probes through an SSH host)."""
    (port,) = free_ports()
    (cli.out / "probe.txt").write_text("probe\n")
    run = cli.run("ssh_process.yaml", inventory=cli.inventory(), extra_vars={"port": port, "fetches": 0})
    _ok(run)
    assert "Secsh channel" not in run.stderr, run.stderr


def test_rendered_argument_errors_point_at_the_argument(cli: Cli) -> None:
    playbook = cli.root / "bad_nodes.yaml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  tasks:\n"
        "    - name: allocate\n"
        "      slurm_allocate:\n"
        "        scheduler: local\n"
        "        layout: {a: 1}\n"
        "        nodes: \"{{ 'many' }}\"\n"
    )
    run = cli.run(playbook, inventory=None, json_output=False)
    assert run.rc == 2, str(run)
    assert "invalid value for 'nodes'" in run.stderr
    assert run.stderr.startswith(f"{playbook}:7:"), run.stderr
