"""Security tests reuse the end-to-end and cluster helpers: the real CLI in a subprocess, in
a scratch directory; the loopback sshd and the local Slurm cluster for the transport tests."""

from tests.cluster.conftest import cli, slurm, slurm_cluster  # noqa: F401  (fixtures)
from tests.e2e.conftest import port, work  # noqa: F401  (fixtures)
from tests.transport.conftest import sshd  # noqa: F401  (fixture)
