"""The local Slurm cluster and loopback sshd fixtures, shared with tests/cluster."""

from tests.cluster.conftest import slurm, slurm_cluster  # noqa: F401
from tests.transport.conftest import sshd  # noqa: F401
