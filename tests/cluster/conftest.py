"""Fixtures for tests against the real local Slurm cluster (tests/cluster/local-slurm.sh).

The cluster is started once per session (about 0.3 s when it already runs, 10 s or so
when the packages must be installed first) and left running for the next session, unless
``SMLPLAY_CLUSTER_KEEP`` is ``0``/``false``/``no``, which stops it at session end.

Where it cannot run at all (not root, or Slurm missing and no apt-get) the tests are
skipped with the reason; under CI (``CI=true``) that is a failure instead, so a broken
setup is not mistaken for a green run. A cluster that should start but does not is always
a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.slurm import RunFn, local_run, squeue

SCRIPT = Path(__file__).resolve().parent / "local-slurm.sh"
_KEEP_OFF = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class SlurmCluster:
    """The running local cluster: its state dir, node names and proctrack plugin."""

    dir: Path
    nodes: tuple[str, ...]
    proctrack: str
    run: RunFn

    def active_jobs(self) -> list[str]:
        return [j.job_id for j in squeue(self.run) if j.is_active]

    def wait_no_active_jobs(self, timeout: float = 15.0) -> list[str]:
        """Wait until squeue lists no pending/running/completing job; return what is left."""
        deadline = time.monotonic() + timeout
        left = self.active_jobs()
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.active_jobs()
        return left


def _cannot(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the local Slurm cluster is unavailable under CI: {reason}")
    pytest.skip(f"needs the local Slurm cluster: {reason}")


def _installed() -> bool:
    return all(shutil.which(c) for c in ("slurmctld", "slurmd", "sbatch", "munged"))


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    if os.geteuid() != 0:
        _cannot("local-slurm.sh must run as root (it starts munged, slurmctld and slurmd)")
    if not _installed() and shutil.which("apt-get") is None:
        _cannot("Slurm is not installed and there is no apt-get to install it")
    up = subprocess.run(
        ["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=900, check=False
    )
    if up.returncode != 0:
        pytest.fail(
            f"`local-slurm.sh up` failed (rc={up.returncode}):\n"
            f"{up.stdout[-2000:]}\n{up.stderr[-4000:]}"
        )
    state = Path(os.environ.get("SMLPLAY_SLURM_DIR", "/tmp/smlplay-slurm"))
    proctrack = (state / "proctrack").read_text().strip()
    cluster = SlurmCluster(
        dir=state, nodes=("n1", "n2", "n3", "n4"), proctrack=proctrack, run=local_run
    )
    yield cluster
    if os.environ.get("SMLPLAY_CLUSTER_KEEP", "1").strip().lower() in _KEEP_OFF:
        subprocess.run(["bash", str(SCRIPT), "down"], check=False, timeout=120)


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The cluster, checked to be free of jobs before and after the test."""
    left = slurm_cluster.wait_no_active_jobs()
    assert not left, f"jobs left over from an earlier test: {left}"
    yield slurm_cluster
    left = slurm_cluster.wait_no_active_jobs()
    if left:
        subprocess.run(["scancel", *left], check=False)
    assert not left, f"the test left jobs behind: {left}"
