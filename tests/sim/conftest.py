"""Helpers for the simulator tests: real server processes on loopback, free ports, teardown.

Every server is started with ``--sim-max-lifetime`` (so a crashed test run leaves nothing
behind for long) and is killed in fixture teardown; stdout and stderr go to a file under the
test's tmp dir so assertions can read the log and nothing blocks on a full pipe.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ports import free_ports

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
#: Upper bound on how long any test server lives, even if teardown never runs.
LIFETIME_S = 120


class Proc:
    """A child process (simulator or router) with its log file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log_path = log
        self._log = log.open("wb")
        self.popen = subprocess.Popen(
            argv,
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
            start_new_session=True,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """Kill this process's group (it is the leader of its own session)."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=5)
        self._log.close()


def sim_argv(port: int, *args: str) -> list[str]:
    """``python -m engine.sim`` on loopback, ending by itself after LIFETIME_S."""
    return [sys.executable, "-m", "engine.sim", "--host", HOST, "--port", str(port), "--sim-max-lifetime", str(LIFETIME_S), *args]


class Sim(Proc):
    """A ``python -m engine.sim`` process."""

    def __init__(self, port: int, args: list[str], log: Path) -> None:
        self.port = port
        self.url = f"http://{HOST}:{port}"
        super().__init__(sim_argv(port, *args), log)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, **{"timeout": 30, **kw})

    def post(self, path: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, json=body, **{"timeout": 30, **kw})

    def server_info(self) -> dict[str, Any]:
        data: dict[str, Any] = self.get("/get_server_info").json()
        return data


class Router(Proc):
    """A real sglang-router, bound to loopback (metrics port too); ready when it says so."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.port, metrics_port = free_ports(2)
        self.url = f"http://{HOST}:{self.port}"
        # The router has no max-lifetime flag: coreutils' timeout bounds it instead.
        bound = ["timeout", str(LIFETIME_S)] if shutil.which("timeout") else []
        super().__init__(
            [
                *bound,
                sys.executable,
                "-m",
                "sglang_router.launch_router",
                *args,
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--prometheus-host",
                HOST,
                "--prometheus-port",
                str(metrics_port),
                "--worker-startup-check-interval",
                "1",
                "--log-level",
                "warn",
            ],
            log,
        )
        try:
            wait_until(
                lambda: httpx.get(self.url + "/readiness").status_code == 200,
                self,
                timeout=30,
                what="router ready",
            )
        except BaseException:
            self.stop()
            raise

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=30)

    def workers(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = httpx.get(self.url + "/workers").json()["workers"]
        return data


def wait_until(pred: Callable[[], bool], proc: Proc, timeout: float = 15.0, what: str = "") -> None:
    """Poll ``pred`` until true; fail at once, with the log tail, if ``proc`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except httpx.HTTPError:
            pass
        if not proc.alive():
            pytest.fail(
                f"{' '.join(proc.argv[:4])} exited ({proc.popen.returncode}) before {what}:\n"
                f"{proc.log[-3000:]}"
            )
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}:\n{proc.log[-3000:]}")


def wait_healthy(sim: Sim, timeout: float = 15.0) -> Sim:
    wait_until(lambda: sim.get("/health").status_code == 200, sim, timeout, f"{sim.url} healthy")
    return sim


StartSim = Callable[..., Sim]


@dataclass
class PDPair:
    """A prefill and a decode simulator, paired through the prefill's bootstrap port."""

    prefill: Sim
    decode: Sim
    bootstrap_port: int

    def tag(self, room: int, port: int | None = None) -> dict[str, Any]:
        """The bootstrap fields a router adds to both halves of a request."""
        return {
            "bootstrap_host": HOST,
            "bootstrap_port": port or self.bootstrap_port,
            "bootstrap_room": room,
        }

    def counters(self, sim: Sim) -> dict[str, int]:
        counters: dict[str, int] = sim.server_info()["sim_counters"]
        return counters


@contextmanager
def start_pd_pair(directory: Path, *, kv_timeout: int) -> Iterator[PDPair]:
    """Start a P/D pair (logs in ``directory``); both are stopped on exit."""
    p_port, d_port, b_port = free_ports(3)
    prefill = Sim(
        p_port,
        [
            "--model-path",
            "m",
            "--disaggregation-mode",
            "prefill",
            "--disaggregation-bootstrap-port",
            str(b_port),
        ],
        directory / "prefill.log",
    )
    decode = Sim(
        d_port,
        ["--model-path", "m", "--disaggregation-mode", "decode", "--sim-kv-timeout", str(kv_timeout)],
        directory / "decode.log",
    )
    try:
        yield PDPair(wait_healthy(prefill), wait_healthy(decode), b_port)
    finally:
        prefill.stop()
        decode.stop()


@pytest.fixture
def start_sim(tmp_path: Path) -> Iterator[StartSim]:
    """Start simulators for one test; ``start_sim(*args, port=None, wait=True)``."""
    procs: list[Sim] = []

    def start(*args: str, port: int | None = None, wait: bool = True) -> Sim:
        port = port or free_ports(1)[0]
        sim = Sim(port, list(args), tmp_path / f"sim-{port}.log")
        procs.append(sim)
        return wait_healthy(sim) if wait else sim

    yield start
    for p in procs:
        p.stop()


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sim")
