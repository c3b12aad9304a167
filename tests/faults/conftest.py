"""Fixtures of the fault matrix: the real local Slurm cluster, the loopback sshd and the
``cli`` driver of tests/cluster (its finalizer fails a test that leaves a job, a step, a
process or an SSH session behind)."""

from tests.cluster.conftest import cli, slurm, slurm_cluster, sshd  # noqa: F401  (fixtures)
