"""``smlplay preflight`` on the real local Slurm cluster, through the loopback sshd as the
login node: a good inventory passes; a wrong partition, a missing model path, too many GPUs,
a taken port on an adopted job's node and an unknown framework flag each fail with a remedy.

Needs the cluster and sshd (``tests/cluster/local-slurm.sh up``, ``tests/cluster/sshd.sh up``);
run under ``flock /tmp/smlplay-servers.lock``: the port case holds a job for a few seconds.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import SlurmCluster
from tests.transport.conftest import Sshd

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "llama70b.yaml"
pytestmark = pytest.mark.cluster


def write_inventory(tmp_path: Path, **overrides: Any) -> Path:
    data = yaml.safe_load((REPO / "inventory" / "local-slurm.yaml").read_text(encoding="utf-8"))
    data["all"]["vars"].update(overrides)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def preflight(sshd: Sshd, inventory: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    argv = [
        sys.executable, "-m", "engine", "preflight", str(PLAYBOOK), "-i", str(inventory), "--output", "json",
        "-e", "layout.prefill.tp=2", "-e", "layout.decode.tp=2",
        "-e", f"ssh_port={sshd.port}", "-e", f"ssh_key={sshd.key}", "-e", f"ssh_known_hosts={sshd.known_hosts}",
        *extra,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=REPO, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    report = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    return proc.returncode, report, proc.stderr


def by_name(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [c for c in report["checks"] if c["name"] == name]


def status(report: dict[str, Any], name: str) -> set[str]:
    return {c["status"] for c in by_name(report, name)}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "Llama-3.1-70B-Instruct"
    path.mkdir(parents=True)
    return path


def test_good_inventory_passes(slurm: SlurmCluster, sshd: Sshd, tmp_path: Path, model_dir: Path) -> None:
    rc, report, err = preflight(sshd, write_inventory(tmp_path), "-e", f"model.path={model_dir}", "--strict")
    assert rc == 0, (report, err)
    assert status(report, "connect") == {"ok"}
    assert status(report, "partition") == {"ok"} and "'debug'" in by_name(report, "partition")[0]["message"]
    assert status(report, "nodes") == {"ok"} and status(report, "gpus") == {"ok"}
    assert status(report, "model") == {"ok"} and str(model_dir) in by_name(report, "model")[0]["message"]
    flags = by_name(report, "flags")
    assert [c["status"] for c in flags] == ["ok"] and "engine.sim" in flags[0]["message"]
    assert status(report, "account") == {"skip"}
    assert not slurm.active_jobs(), "preflight must not allocate anything"


def test_wrong_partition(slurm: SlurmCluster, sshd: Sshd, tmp_path: Path, model_dir: Path) -> None:
    rc, report, _ = preflight(sshd, write_inventory(tmp_path, slurm_partition="debgu", slurm_account="proj"), "-e", f"model.path={model_dir}")
    assert rc == 1 and not report["ok"]
    [account] = by_name(report, "account")  # the test cluster has no slurmdbd: said, not failed
    assert account["status"] == "skip" and "accounting is not available" in account["message"] and "'proj'" in account["message"]
    [check] = by_name(report, "partition")
    assert check["status"] == "fail" and "'debgu' does not exist" in check["message"]
    assert "did you mean 'debug'?" in check["remedy"]


def test_missing_model_path(slurm: SlurmCluster, sshd: Sshd, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    rc, report, _ = preflight(sshd, write_inventory(tmp_path), "-e", f"model.path={missing}")
    assert rc == 0 and status(report, "model") == {"warn"}  # the simulator reads no weights
    rc, report, _ = preflight(sshd, write_inventory(tmp_path), "-e", f"model.path={missing}", "--strict")
    assert rc == 1
    [check] = by_name(report, "model")
    assert f"{missing} does not exist on login" in check["message"] and "model.path" in check["remedy"]


def test_too_many_gpus_and_nodes(slurm: SlurmCluster, sshd: Sshd, tmp_path: Path, model_dir: Path) -> None:
    rc, report, _ = preflight(sshd, write_inventory(tmp_path, gpus_per_node=4), "-e", f"model.path={model_dir}")
    assert rc == 1
    [gpus] = by_name(report, "gpus")
    assert gpus["status"] == "fail" and "at most 2 per node" in gpus["message"] and "gpus_per_node" in gpus["remedy"]
    # the playbook's own layout (TP 8 on 2-GPU nodes: 8 nodes) does not fit the 4-node partition
    rc, report, _ = preflight(sshd, write_inventory(tmp_path), "-e", f"model.path={model_dir}", "-e", "layout.prefill.tp=8", "-e", "layout.decode.tp=8")
    assert rc == 1 and "8 node(s) requested, partition 'debug' has 4" in by_name(report, "nodes")[0]["message"]


def test_unknown_framework_flag(slurm: SlurmCluster, sshd: Sshd, tmp_path: Path, model_dir: Path) -> None:
    rc, report, _ = preflight(sshd, write_inventory(tmp_path), "-e", f"model.path={model_dir}", "-e", '{"sglang_args": {"tp-szie": 2}}')
    assert rc == 1
    [flags] = by_name(report, "flags")
    assert flags["status"] == "fail" and "--tp-szie (did you mean --tp-size?)" in flags["message"]


@pytest.fixture
def held_job(slurm: SlurmCluster) -> Iterator[str]:
    """A running 2-node job to adopt (what `salloc` would give), cancelled afterwards."""
    out = subprocess.run(
        ["sbatch", "--parsable", "-N", "2", "-p", "debug", "-t", "5", "--job-name", "smlplay-preflight-test", "--output=/dev/null", "--wrap", "exec sleep 120"],
        capture_output=True, text=True, check=True, timeout=30,
    )
    job = out.stdout.strip().split(";")[0]
    try:
        for _ in range(100):
            state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, check=False).stdout.strip()
            if state == "RUNNING":
                break
            subprocess.run(["sleep", "0.1"], check=False)
        yield job
    finally:
        subprocess.run(["scancel", job], check=False)


def test_taken_port_on_an_adopted_job(slurm: SlurmCluster, sshd: Sshd, tmp_path: Path, model_dir: Path, held_job: str) -> None:
    with socket.socket() as busy:  # every local Slurm node is 127.0.0.1: a port taken here is taken on n1
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc, report, err = preflight(
            sshd, write_inventory(tmp_path), "-e", f"model.path={model_dir}",
            "-e", f"allocation_job_id={held_job}", "-e", json.dumps({"worker_port_base": port}),
        )
    assert rc == 1, (report, err)
    assert status(report, "job") == {"ok"} and f"job {held_job} is running on 2 node(s)" in by_name(report, "job")[0]["message"]
    taken = [c for c in by_name(report, "ports") if c["status"] == "fail"]
    assert taken and all(f"port(s) {port} already in use" in c["message"] for c in taken), report
    assert "partition" not in {c["name"] for c in report["checks"]}  # an adopted job: no new request to check


def test_missing_image_and_no_container_runtime(slurm: SlurmCluster, sshd: Sshd, tmp_path: Path, model_dir: Path) -> None:
    image = tmp_path / "sglang.sif"
    rc, report, _ = preflight(
        sshd, write_inventory(tmp_path, container_runtime="apptainer", container_image=str(image)), "-e", f"model.path={model_dir}",
    )
    assert rc == 1
    [check] = by_name(report, "image")
    assert check["status"] == "fail" and f"container image {image} does not exist on login" in check["message"]
    [flags] = by_name(report, "flags")  # --help runs inside the image: apptainer is not installed here
    assert flags["status"] == "fail" and f"in apptainer image {image} failed" in flags["message"]
