"""playbooks/llama70b.yaml on the real local Slurm cluster, through the loopback sshd as the
login node: sbatch/scancel over SSH, every process an srun step on n1..n4."""

from __future__ import annotations

from pathlib import Path

from tests.cluster.conftest import SlurmCluster
from tests.stack.stack import REPO, check_live_stack, run_stack, tear_down_and_check
from tests.transport.conftest import Sshd


def test_llama70b_pd_on_local_slurm(slurm: SlurmCluster, sshd: Sshd, tmp_path: Path) -> None:
    inventory = tmp_path / "slurm.yaml"
    inventory.write_text((REPO / "inventory" / "local-slurm.yaml").read_text())
    stack = run_stack(
        tmp_path,
        "-i", str(inventory),
        "-e", "layout.prefill.tp=2",
        "-e", "layout.decode.tp=2",
        "-e", f"ssh_port={sshd.port}",
        "-e", f"ssh_key={sshd.key}",
        "-e", f"ssh_known_hosts={sshd.known_hosts}",
    )
    try:
        check_live_stack(stack)
        jobs = slurm.active_jobs()
        assert len(jobs) == 1, jobs  # one holding job; every process is a step of it
        hosts = stack.state()["hosts"]
        assert hosts["n1"]["connection"] == "srun" and hosts["n1"]["srun_gateway"] == "login"
    finally:
        tear_down_and_check(stack)
    assert not slurm.wait_no_active_jobs(), "the allocation outlived `smlplay down`"
