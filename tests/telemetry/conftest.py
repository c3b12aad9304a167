"""Fixtures for the telemetry tests: a real VictoriaMetrics on loopback (Debian ``victoria-metrics``).

The same package ships ``vmagent``; ``prometheus-node-exporter`` stands in for the DCGM exporter,
which cannot run without a GPU. Where a binary is missing the tests are skipped with the apt
command that installs it; under CI (``CI=true``) that is a failure instead, so a broken setup is
not mistaken for a green run (``.ci/run`` installs both packages).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.sim.conftest import HOST, Proc, free_ports, wait_until

APT = "apt-get install -y --no-install-recommends victoria-metrics prometheus-node-exporter"


def require_binary(name: str) -> str:
    """The path of ``name``; skip (fail under CI) with the install command if it is missing."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (install it with: {APT})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"telemetry tests cannot run under CI: {reason}")
        pytest.skip(reason)
    return path


@dataclass
class VictoriaMetrics:
    """A running single-node VictoriaMetrics; ``url`` is its base URL (no trailing slash)."""

    url: str
    proc: Proc

    @property
    def write_url(self) -> str:
        """Prometheus remote-write endpoint, for ``vmagent -remoteWrite.url``."""
        return self.url + "/api/v1/write"

    def flush(self) -> None:
        """Make everything ingested so far searchable (``/internal/force_flush``).

        Without it, freshly written series appeared only ~8 s after ingestion (1.79.5).
        """
        httpx.get(self.url + "/internal/force_flush", timeout=10).raise_for_status()

    def query(self, promql: str, flush: bool = True) -> list[dict[str, Any]]:
        """Instant query (``GET /api/v1/query``): the result series, ``{"metric", "value"}`` each.

        Flushes first unless ``flush=False``, so a query sees all data received until then.
        """
        if flush:
            self.flush()
        resp = httpx.get(self.url + "/api/v1/query", params={"query": promql}, timeout=10)
        resp.raise_for_status()
        body = resp.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


@pytest.fixture
def victoria_metrics(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    """VictoriaMetrics on a free loopback port with its storage under the test's tmp dir.

    ``-search.latencyOffset=1s``: by default the newest 30 s are hidden from queries, so data
    written a moment ago would not be found.
    """
    binary = require_binary("victoria-metrics")
    port = free_ports(1)[0]
    proc = Proc(
        [
            binary,
            f"-httpListenAddr={HOST}:{port}",
            f"-storageDataPath={tmp_path / 'vm-data'}",
            "-search.latencyOffset=1s",
        ],
        tmp_path / "victoria-metrics.log",
    )
    vm = VictoriaMetrics(f"http://{HOST}:{port}", proc)
    try:
        wait_until(
            lambda: httpx.get(vm.url + "/health", timeout=2).status_code == 200,
            proc,
            timeout=20,
            what="VictoriaMetrics /health",
        )
        yield vm
    finally:
        proc.stop()
