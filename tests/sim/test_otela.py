"""The OpenTela stand-in (``python -m engine.sim.otela``) with real processes on loopback.

It wraps a real simulated SGLang server staged in a script file (as roles do, because
``--subprocess`` is split on whitespace without a shell), so registration, forwarding and
teardown are checked against a server that really starts, answers and stops. Teardown kills
the stand-in and, from the record file, every subprocess group it started, even if a test
failed half-way (the subprocess runs in its own process group, out of reach of the stand-in's).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from engine.sim.otela import NO_PROVIDER, parse_duration, read_record
from tests.sim.conftest import HOST, Proc, free_ports, sim_argv, wait_until

BOOTSTRAP = "/ip4/10.1.2.3/tcp/43905/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo"
CHAT = "/v1/service/llm/v1/chat/completions"


class Otela(Proc):
    """A stand-in process with its own API port and record file."""

    def __init__(
        self, args: list[str], tmp: Path, name: str, api_flag: bool = True, env: Any = None
    ) -> None:
        self.api_port = free_ports(1)[0]
        self.url = f"http://{HOST}:{self.api_port}"
        self.record_path = tmp / f"{name}.record.jsonl"
        port_args = ["--api.port", str(self.api_port)] if api_flag else []
        super().__init__(
            [sys.executable, "-m", "engine.sim.otela", *args, *port_args],
            tmp / f"{name}.log",
            env={
                "OTELA_STANDIN_RECORD": str(self.record_path),
                "OTELA_STANDIN_API_PORT": str(self.api_port),
                **(env or {}),
            },
        )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)

    def chat(self, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.url + CHAT, json=body, timeout=30)

    def events(self) -> list[dict[str, Any]]:
        return read_record(self.record_path) if self.record_path.exists() else []

    def names(self) -> list[str]:
        return [e["event"] for e in self.events()]

    def child_pid(self) -> int | None:
        started = [e for e in self.events() if e["event"] == "started"]
        return started[0]["subprocess_pid"] if started else None

    def services(self) -> list[dict[str, Any]]:
        table = self.get("/v1/dnt/table").json()
        return [s for peer in table.values() for s in peer["service"]]

    def wait_api(self) -> Otela:
        wait_until(lambda: self.get("/v1/health").status_code == 200, self, 15, "otela API")
        return self

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM the stand-in itself (not its group) and wait: its exit code."""
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=timeout)


class StartOtela(Protocol):
    def __call__(
        self, *args: str, api_flag: bool = True, env: dict[str, str] | None = None
    ) -> Otela: ...


def group_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is in process group ``pgid``."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def wait_group_gone(pgid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while group_alive(pgid):
        assert time.monotonic() < deadline, f"process group {pgid} still alive"
        time.sleep(0.05)


@pytest.fixture
def start_otela(tmp_path: Path) -> Iterator[StartOtela]:
    procs: list[Otela] = []

    def start(*args: str, api_flag: bool = True, env: dict[str, str] | None = None) -> Otela:
        o = Otela(list(args), tmp_path, f"otela{len(procs)}", api_flag, env)
        procs.append(o)
        return o

    yield start
    for o in procs:
        o.stop()
        pid = o.child_pid()
        if pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def script(tmp: Path, name: str, body: str) -> Path:
    path = tmp / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def sim_script(tmp: Path, port: int, *extra: str) -> Path:
    """The simulated server, staged in a script as a role stages the real launch command."""
    argv = sim_argv(port, "--model-path", "m", "--served-model-name", "llama", *extra)
    return script(tmp, f"serve-{port}.sh", "exec " + " ".join(argv))


def test_registers_forwards_and_deregisters(start_otela: StartOtela, tmp_path: Path) -> None:
    port = free_ports(1)[0]
    # The start-up delay gives a window in which the server runs but is not healthy yet.
    serve = sim_script(tmp_path, port, "--sim-startup-delay", "3")
    o = start_otela(
        "start",
        "--bootstrap.addr",
        BOOTSTRAP,
        "--service.name",
        "llm",
        "--service.port",
        str(port),
        "--subprocess",
        str(serve),
        "--service.health_interval",
        "200ms",
    ).wait_api()
    peer = o.get("/v1/self").json()["id"]
    assert peer.startswith("12D3KooW")
    assert o.services() == []
    refused = o.chat({"model": "llama", "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 503
    assert refused.json() == {"error": NO_PROVIDER}

    wait_until(lambda: bool(o.services()), o, 20, "service registered")
    table = o.get("/v1/dnt/table").json()
    assert list(table) == [peer]
    [svc] = table[peer]["service"]
    assert (svc["name"], svc["port"], svc["identity_group"]) == ("llm", str(port), ["model=llama"])
    assert httpx.get(f"http://{HOST}:{port}/health").status_code == 200

    r = o.chat(
        {"model": "llama", "messages": [{"role": "user", "content": "a b c"}], "max_tokens": 4}
    )
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 4
    assert len(r.json()["choices"][0]["message"]["content"].split()) == 4
    stream = o.chat(
        {
            "model": "llama",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 2,
            "stream": True,
        }
    )
    assert stream.status_code == 200
    assert stream.text.rstrip().endswith("data: [DONE]")
    wrong_model = o.chat({"model": "other", "messages": [{"role": "user", "content": "x"}]})
    assert wrong_model.status_code == 503

    child = o.child_pid()
    assert child is not None
    assert o.terminate() == 0
    wait_group_gone(child)
    events = o.events()
    assert [e["event"] for e in events] == [
        "started",
        "registered",
        "deregistered",
        "subprocess_exit",
    ]
    started, registered, deregistered, exited = events
    assert started["flags"]["bootstrap.addr"] == BOOTSTRAP
    assert started["flags"]["service.port"] == port
    assert started["flags"]["service.health_interval"] == pytest.approx(0.2)
    assert started["subprocess_argv"] == [str(serve)]
    assert started["argv"][0] == "start"
    assert registered["model"] == "llama" and registered["service"] == "llm"
    # Registration waited for the 3 s start-up delay (health 503 until then).
    assert registered["unix"] - started["unix"] > 2.0
    assert deregistered["reason"] == "got SIGTERM" and deregistered["was_registered"]
    assert exited["rc"] == 0
    assert {e["invocation"] for e in events} == {started["invocation"]}


def test_health_failures_deregister_then_reregister(
    start_otela: StartOtela, tmp_path: Path
) -> None:
    """A frozen server (SIGSTOP) misses health polls: deregistered after 2, back after SIGCONT."""
    port = free_ports(1)[0]
    o = start_otela(
        "start",
        "--service.name",
        "llm",
        "--service.port",
        str(port),
        "--subprocess",
        str(sim_script(tmp_path, port)),
        "--service.health_interval",
        "0.2",
        "--service.health_failures",
        "2",
    ).wait_api()
    wait_until(lambda: bool(o.services()), o, 20, "service registered")
    child = o.child_pid()
    assert child is not None
    os.kill(child, signal.SIGSTOP)
    try:
        wait_until(lambda: "deregistered" in o.names(), o, 15, "deregistered after failures")
        assert o.services() == []
    finally:
        os.kill(child, signal.SIGCONT)
    wait_until(lambda: o.names().count("registered") == 2, o, 15, "registered again")
    dereg = next(e for e in o.events() if e["event"] == "deregistered")
    assert dereg["reason"] == "2 consecutive failed health checks"
    assert o.terminate() == 0


def test_subprocess_exit_code_is_propagated(start_otela: StartOtela, tmp_path: Path) -> None:
    fails = script(tmp_path, "fails.sh", "echo from-child; echo err-child >&2; exit 3")
    o = start_otela(
        "start", "--service.name", "llm", "--service.port", "1", "--subprocess", str(fails)
    )
    assert o.popen.wait(timeout=15) == 3
    assert "from-child" in o.log and "err-child" in o.log
    assert o.names() == ["started", "subprocess_exit", "deregistered"]
    assert o.events()[1]["rc"] == 3
    assert o.events()[2] == {
        **o.events()[2],
        "reason": "subprocess exited",
        "was_registered": False,
    }


def test_metrics_only_node(start_otela: StartOtela) -> None:
    """No --service.*: nothing is published, requests find no provider; the env sets the API port."""
    o = start_otela(
        "start", "--bootstrap.addr", BOOTSTRAP, "--subprocess", "sleep 60", api_flag=False
    )
    o.wait_api()
    wait_until(lambda: o.child_pid() is not None, o, 10, "started event")
    assert o.services() == []
    r = o.chat({"model": "llama", "messages": [{"role": "user", "content": "hi"}]})
    assert (r.status_code, r.json()) == (503, {"error": NO_PROVIDER})
    started = o.events()[0]
    assert started["flags"]["service.name"] is None and started["flags"]["service.port"] is None
    assert started["flags"]["api.port"] == o.api_port
    assert started["subprocess_argv"] == ["sleep", "60"]
    child = o.child_pid()
    assert child is not None
    assert o.terminate() == 0
    wait_group_gone(child)
    assert o.names() == ["started", "deregistered", "subprocess_exit"]
    assert o.events()[2]["rc"] == 128 + signal.SIGTERM  # sleep died of the forwarded SIGTERM


def test_quoted_argument_is_split_like_the_real_otela(
    start_otela: StartOtela, tmp_path: Path
) -> None:
    """The real otela splits --subprocess on whitespace and execs it without a shell, so quotes
    are ordinary characters: ``--name 'two words'`` reaches the program as three arguments
    ``--name``, ``'two``, ``words'``. This is why roles stage the command in a script file."""
    out = tmp_path / "argv.txt"
    show = script(tmp_path, "argv.sh", f"printf '%s\\n' \"$@\" > {out}")
    o = start_otela("start", "--subprocess", f"{show} --name 'two words'")
    assert o.popen.wait(timeout=15) == 0
    assert out.read_text().splitlines() == ["--name", "'two", "words'"]
    assert o.events()[0]["subprocess_argv"] == [str(show), "--name", "'two", "words'"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--service.name", "llm"], "--service.name and --service.port go together"),
        (["--service.port", "30000"], "--service.name and --service.port go together"),
        (["--bootstrap.addr", "10.0.0.1:43905"], "is not a multiaddr"),
        (["--service.health_interval", "soon"], "invalid duration"),
        (["--service.port", "x", "--service.name", "llm"], "is not a port number"),
        (["--service.nam", "llm"], "unrecognized arguments"),
    ],
)
def test_rejected_command_lines_are_recorded(
    start_otela: StartOtela, args: list[str], message: str
) -> None:
    o = start_otela("start", *args)
    assert o.popen.wait(timeout=15) == 2
    assert message in o.log
    [event] = o.events()
    assert event["event"] == "rejected" and message in event["error"]


def test_help_says_it_is_a_stand_in(start_otela: StartOtela) -> None:
    o = start_otela("start", "--help", api_flag=False)
    assert o.popen.wait(timeout=15) == 0
    assert "STAND-IN" in o.log and "not OpenTela" in o.log
    assert o.events() == []


def test_parse_duration() -> None:
    assert parse_duration("10s") == 10
    assert parse_duration("0.2") == pytest.approx(0.2)
    assert parse_duration("200ms") == pytest.approx(0.2)
    assert parse_duration("1m30s") == 90
    with pytest.raises(ValueError):
        parse_duration("10 s")


def test_subprocess_ignoring_sigterm_is_killed_after_grace(
    start_otela: StartOtela, tmp_path: Path
) -> None:
    """The whole group is signalled (the script's ``sleep`` child too) and SIGKILLed after 10 s."""
    stubborn = script(tmp_path, "stubborn.sh", "trap '' TERM\nsleep 60 &\nwait")
    o = start_otela("start", "--subprocess", str(stubborn)).wait_api()
    wait_until(lambda: o.child_pid() is not None, o, 10, "started event")
    child = o.child_pid()
    assert child is not None
    time.sleep(0.3)  # let the shell install its trap and start sleep
    t0 = time.monotonic()
    assert o.terminate(timeout=20) == 0
    assert 9 < time.monotonic() - t0 < 15
    wait_group_gone(child)
    assert o.events()[-1]["rc"] == 128 + signal.SIGKILL
