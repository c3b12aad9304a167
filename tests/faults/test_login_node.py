"""The login node's sshd restarted mid-run. The run's login host is an sshd of this test's
own (tests/cluster/sshd.sh with a private state dir and port), so restarting it -- the
listener and every session it carries, as a reboot or `systemctl restart ssh` with
KillMode=control-group would -- disturbs no one else. The run must fail clearly (the
benchmark's channel is gone), reconnect for the teardown, and still release the allocation."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import Cli, free_ports, processes
from tests.faults.harness import Stack, check_outcome, report, teardown_seconds
from tests.transport.conftest import SSHD_SCRIPT, Sshd

pytestmark = pytest.mark.cluster


class OwnSshd:
    """A private sshd.sh instance: up, restart (by pid), down."""

    def __init__(self, root: Path) -> None:
        self.env = {**os.environ, "SMLPLAY_SSH_DIR": str(root / "ssh"), "SMLPLAY_SSHD_PORT": str(free_ports()[0])}

    def up(self) -> Sshd:
        subprocess.run(["bash", str(SSHD_SCRIPT), "up"], env=self.env, check=True, capture_output=True, timeout=120)
        out = subprocess.run(["bash", str(SSHD_SCRIPT), "env"], env=self.env, check=True, capture_output=True, text=True).stdout
        values = {k: shlex.split(v)[0] if v else "" for k, _, v in (line.partition("=") for line in out.splitlines())}
        return Sshd(
            host=values["SMLPLAY_SSH_HOST"], port=int(values["SMLPLAY_SSH_PORT"]), user=values["SMLPLAY_SSH_USER"],
            key=values["SMLPLAY_SSH_KEY"], known_hosts=values["SMLPLAY_SSH_KNOWN_HOSTS"], dir=values["SMLPLAY_SSH_DIR"],
        )

    def listener(self) -> int:
        return int((Path(self.env["SMLPLAY_SSH_DIR"]) / "sshd.pid").read_text().strip())

    def sessions(self) -> list[int]:
        listener = self.listener()
        return [p.pid for p in processes() if p.ppid == listener]

    def restart(self) -> None:
        victims = [*self.sessions(), self.listener()]
        for pid in victims:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(p.pid in victims for p in processes()) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.up()

    def down(self) -> None:
        subprocess.run(["bash", str(SSHD_SCRIPT), "down"], env=self.env, check=False, capture_output=True, timeout=60)


@pytest.fixture
def own_sshd(tmp_path: Path) -> Iterator[tuple[OwnSshd, Sshd]]:
    own = OwnSshd(tmp_path)
    try:
        yield own, own.up()
    finally:
        own.down()


def test_login_sshd_restarted_mid_run(cli: Cli, own_sshd: tuple[OwnSshd, Sshd]) -> None:
    own, login = own_sshd
    cli.env.update(SMLPLAY_SSH_PORT=str(login.port), SMLPLAY_SSH_KEY=login.key, SMLPLAY_SSH_KNOWN_HOSTS=login.known_hosts)
    stack = Stack(cli, "slurm", {"bench_seconds": 30})
    watch = stack.start()
    try:
        watch.task_started("run the benchmark")
        time.sleep(1.0)
        own.restart()
        restarted = time.monotonic()
        at, event = watch.wait_for(lambda e: e.get("event") == "task_result" and e.get("task") == "run the benchmark", timeout=40)
        run = watch.finish(timeout=90)
    finally:
        watch.finish_quietly()
    detected = at - restarted
    assert event["status"] == "failed", event
    assert detected < 5.0, (detected, event)
    # a clear failure naming the lost connection, then a teardown that reconnected
    state = check_outcome(stack, watch, run, rc=1, status="failed")
    assert "task 'run the benchmark' on n" in state["message"], state
    assert "shell step" in state["message"] or "ssh" in state["message"].lower(), state["message"]
    assert own.sessions() == [], "ssh sessions of the run are left on the login node"
    report("login node's sshd restarted mid-run (benchmark)", "test_login_node.py::test_login_sshd_restarted_mid_run", detected, teardown_seconds(watch))
