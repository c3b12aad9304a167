"""`smlplay logs` reads a log where it is written: on the SSH host, through its transport.

The talker's log path starts with ``~/``: the remote home, which no local read can resolve,
so every line the commands print came over SSH.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.remotelogs import CHUNK, RemoteLog, parse_output, read_script, reader_of, remote_logs
from tests.cluster.conftest import Cli

HOSTS = {
    "here": {"connection": "local"},
    "login": {"connection": "ssh"},
    "n1": {"connection": "srun", "srun_gateway": "login"},
    "n2": {"connection": "srun"},  # gateway: localhost
    "loop": {"connection": "srun", "srun_gateway": "loop"},
}


def test_logs_are_read_through_the_nearest_host_that_sees_them() -> None:
    assert [reader_of(h, HOSTS) for h in ("here", "login", "n1", "n2", "loop", "unknown")] == [None, "login", "login", None, None, None]
    state = {"hosts": HOSTS, "processes": [{"name": "w", "host": "n1", "log": "/runs/x/w.log"}, {"name": "r", "host": "here", "log": "/tmp/r.log"}]}
    assert remote_logs(state) == [RemoteLog("login", "/runs/x/w.log", "w@n1")]


def test_the_read_script_is_binary_safe_and_restarts_a_truncated_log(tmp_path: Path) -> None:
    log = tmp_path / "a log with spaces.txt"
    payload = bytes(range(256)) + b"\nend"
    log.write_bytes(payload)
    wanted = [(str(log), 0), (str(tmp_path / "missing"), 0), (str(log), 256), (str(log), 10**6)]
    out = subprocess.run(["bash", "-c", read_script(wanted)], capture_output=True, text=True, check=True).stdout
    whole, missing, tail, truncated = parse_output(out, len(wanted))
    assert whole is not None and (whole.size, whole.start, whole.data) == (len(payload), 0, payload)
    assert missing is None
    assert tail is not None and tail.data == payload[256:]
    assert truncated is not None and truncated.start == 0 and truncated.data == payload  # read again
    big = tmp_path / "big"
    big.write_bytes(b"x" * (CHUNK + 10))
    out = subprocess.run(["bash", "-c", read_script([(str(big), 0)])], capture_output=True, text=True, check=True).stdout
    (first,) = parse_output(out, 1)
    assert first is not None and len(first.data) == CHUNK and first.size == CHUNK + 10


@pytest.mark.cluster
def test_logs_and_follow_read_an_ssh_hosts_log_there(cli: Cli) -> None:
    remote_dir = Path.home() / f"smlplay-logs-{cli.marker}"  # the loopback sshd's ~ is ours
    try:
        run = cli.run("ssh_logs.yaml", "--keep-running", inventory=cli.inventory())
        assert run.rc == 0, str(run)
        record = cli.last_run_dir()
        time.sleep(1.0)
        shown = cli.smlplay("logs", record.name)
        assert shown.rc == 0, str(shown)
        assert f"==> ~/smlplay-logs-{cli.marker}/talker.log <==" in shown.stdout
        assert f"line 1 {cli.marker}\n" in shown.stdout and "warning" not in shown.stderr

        follow = subprocess.Popen(
            [sys.executable, "-m", "engine", "logs", record.name, "-f", "--output", "json"],
            cwd=cli.root, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(2.0)
        down = cli.smlplay("down", record.name)
        assert down.rc == 0, str(down)
        out, err = follow.communicate(timeout=60)
        assert follow.returncode == 0, err
        lines = [json.loads(line) for line in out.splitlines()]
        assert {line["source"] for line in lines} == {"talker@login"}, lines[:3]
        numbers = [int(line["line"].split()[1]) for line in lines if line["line"].startswith("line ")]
        # every line once, in order, from the first (the -f starts at the beginning) on
        assert numbers[:1] == [1] and numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 40, numbers[-5:]
    finally:
        shutil.rmtree(remote_dir, ignore_errors=True)
