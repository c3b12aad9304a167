"""The simulator behind the real smg gateway (Shepherd Model Gateway, PyPI ``smg``), with the
workers registered at run time through its worker API, as the router role does it.

smg starts with no workers; ``POST /workers`` queues each one (202 and a Location), a known URL
answers 409, ``GET/DELETE /workers/{id}`` read and remove one. The P/D test adds a second decode
worker to a running stack, removes the first, and restarts a crashed worker at the same
address, while requests keep going through the gateway.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sim.conftest import (
    HOST,
    LIFETIME_S,
    Proc,
    Sim,
    StartSim,
    free_ports,
    wait_healthy,
    wait_until,
)

pytest.importorskip("smg")
pytestmark = pytest.mark.e2e


class Gateway(Proc):
    """``python -m smg launch`` on loopback with no workers; ready when ``/health`` answers."""

    def __init__(self, log: Path, *args: str) -> None:
        self.port, metrics_port = free_ports(2)
        self.url = f"http://{HOST}:{self.port}"
        bound = ["timeout", str(LIFETIME_S)] if shutil.which("timeout") else []
        super().__init__(
            [*bound, sys.executable, "-m", "smg", "launch", *args, "--host", HOST, "--port", str(self.port),
             "--prometheus-host", HOST, "--prometheus-port", str(metrics_port), "--log-level", "info"],
            log,
        )
        try:
            wait_until(lambda: httpx.get(self.url + "/health").status_code == 200, self, 30, "smg /health")
        except BaseException:
            self.stop()
            raise

    def register(self, url: str, worker_type: str, bootstrap_port: int | None = None) -> httpx.Response:
        spec: dict[str, Any] = {"url": url, "worker_type": worker_type}
        if bootstrap_port is not None:
            spec["bootstrap_port"] = bootstrap_port
        return httpx.post(self.url + "/workers", json=spec, timeout=10)

    def workers(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(self.url + "/workers", timeout=10).json()
        return data

    def wait_counts(self, proc: Proc, **counts: int) -> None:
        def ok() -> bool:
            stats = self.workers()["stats"]
            return all(stats[f"{kind}_count"] == n for kind, n in counts.items())

        wait_until(ok, proc, 30, f"smg worker counts {counts}")

    def generate(self, text: str, n: int = 4) -> httpx.Response:
        return httpx.post(self.url + "/generate", json={"text": text, "sampling_params": {"max_new_tokens": n}}, timeout=30)


@pytest.fixture
def gateway_log(tmp_path: Path) -> Path:
    return tmp_path / "smg.log"


def test_worker_api_in_regular_mode(start_sim: StartSim, gateway_log: Path) -> None:
    sims = [start_sim("--model-path", "m"), start_sim("--model-path", "m")]
    gw = Gateway(gateway_log, "--policy", "round_robin")
    try:
        assert gw.workers()["stats"] == {"prefill_count": 0, "decode_count": 0, "regular_count": 0}
        assert httpx.get(gw.url + "/readiness").status_code == 503  # no worker yet
        added = [gw.register(s.url, "regular") for s in sims]
        assert [r.status_code for r in added] == [202, 202], [r.text for r in added]
        location = added[0].headers["location"]
        assert location == f"/workers/{added[0].json()['worker_id']}"
        gw.wait_counts(gw, regular=2)
        again = gw.register(sims[0].url, "regular")
        assert again.status_code == 409 and again.json()["code"] == "WORKER_ALREADY_EXISTS", again.text
        one = httpx.get(gw.url + location, timeout=10)
        assert one.status_code == 200 and one.json()["url"] == sims[0].url, one.text
        assert httpx.get(gw.url + "/readiness").status_code == 200
        for i in range(4):
            r = gw.generate(f"hi {i}")
            assert r.status_code == 200 and r.json()["meta_info"]["completion_tokens"] == 4, r.text
        served = [s.server_info()["sim_counters"]["requests"] for s in sims]
        assert all(n >= 2 for n in served), served  # round robin over both registered workers
        # what smg asked of a worker while registering it: every route exists in the simulator
        routes = sims[0].server_info()["sim_routes"]
        assert routes.get("GET /health 200"), routes
        # (GET /loads is no SGLang route either: smg tries it before SGLang's /v1/loads)
        assert routes.get("GET /v1/loads 200"), routes
        assert not [k for k in routes if k.endswith((" 404", " 405", " 500")) and k != "GET /loads 404"], routes
    finally:
        gw.stop()


class Load:
    """Requests through the gateway, one after another in a thread, until stopped."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.statuses: Counter[int] = Counter()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            try:
                r = self.gw.generate(f"load {i} a b c", 3)
                self.statuses[r.status_code] += 1
                if r.status_code != 200:
                    self.errors.append(r.text[:300])
            except httpx.HTTPError as exc:
                self.statuses[-1] += 1
                self.errors.append(repr(exc))
            i += 1
            time.sleep(0.02)

    def stop(self) -> Counter[int]:
        self._stop.set()
        self._thread.join(timeout=40)
        return self.statuses


@pytest.fixture
def pd_stack(tmp_path: Path, gateway_log: Path) -> Iterator[tuple[Gateway, Sim, Sim, int, list[Proc]]]:
    """A running P/D stack: one prefill, one decode, smg with both registered through the API."""
    p_port, d_port, b_port = free_ports(3)
    prefill = Sim(p_port, ["--model-path", "m", "--disaggregation-mode", "prefill", "--disaggregation-bootstrap-port", str(b_port)], tmp_path / "prefill.log")
    decode = Sim(d_port, ["--model-path", "m", "--disaggregation-mode", "decode", "--sim-kv-timeout", "5"], tmp_path / "decode0.log")
    procs: list[Proc] = [prefill, decode]
    try:
        wait_healthy(prefill)
        wait_healthy(decode)
        gw = Gateway(gateway_log, "--pd-disaggregation", "--policy", "round_robin")
        procs.append(gw)
        assert gw.register(prefill.url, "prefill", b_port).status_code == 202
        assert gw.register(decode.url, "decode").status_code == 202
        gw.wait_counts(gw, prefill=1, decode=1)
        yield gw, prefill, decode, b_port, procs
    finally:
        for p in procs:
            p.stop()


def test_pd_decode_worker_added_and_removed_while_serving(pd_stack: tuple[Gateway, Sim, Sim, int, list[Proc]], tmp_path: Path) -> None:
    gw, prefill, decode0, b_port, procs = pd_stack
    workers = {w["worker_type"]: w for w in gw.workers()["workers"]}
    assert workers["prefill"]["bootstrap_port"] == b_port
    first = gw.generate("x y z", 8)
    assert first.status_code == 200 and first.json()["meta_info"]["completion_tokens"] == 8, first.text

    load = Load(gw)
    try:
        # a decode worker started later joins the running gateway
        decode1 = Sim(free_ports(1)[0], ["--model-path", "m", "--disaggregation-mode", "decode", "--sim-kv-timeout", "5"], tmp_path / "decode1.log")
        procs.append(decode1)
        wait_healthy(decode1)
        assert gw.register(decode1.url, "decode").status_code == 202
        gw.wait_counts(gw, prefill=1, decode=2)
        wait_until(lambda: decode1.server_info()["sim_counters"]["kv_transfers"] > 0, decode1, 20, "the new decode serves")
        # the first decode worker is removed, then stopped: traffic moves to the new one
        ids = {w["url"]: w["id"] for w in gw.workers()["workers"]}
        removed = httpx.delete(f"{gw.url}/workers/{ids[decode0.url]}", timeout=10)
        assert removed.status_code in (200, 202, 204), removed.text
        gw.wait_counts(gw, prefill=1, decode=1)
        assert httpx.get(f"{gw.url}/workers/{ids[decode0.url]}", timeout=10).status_code == 404
        decode0.stop()
        served_before = decode1.server_info()["sim_counters"]["kv_transfers"]
        wait_until(lambda: decode1.server_info()["sim_counters"]["kv_transfers"] >= served_before + 10, decode1, 20, "load after the removal")
    finally:
        statuses = load.stop()
    assert set(statuses) == {200} and statuses[200] >= 20, (statuses, load.errors[:5])
    assert prefill.server_info()["sim_counters"]["bootstrap_failed"] == 0

    # a worker that crashed and was restarted at the same address: still known (409), serving again
    port = decode1.port
    decode1.stop()
    restarted = Sim(port, ["--model-path", "m", "--disaggregation-mode", "decode", "--sim-kv-timeout", "5"], tmp_path / "decode1-restarted.log")
    procs.append(restarted)
    wait_healthy(restarted)
    again = gw.register(restarted.url, "decode")
    assert again.status_code in (202, 409), again.text
    wait_until(lambda: gw.generate("after the restart").status_code == 200, restarted, 30, "a request after the restart")
    assert restarted.server_info()["sim_counters"]["kv_transfers"] >= 1
