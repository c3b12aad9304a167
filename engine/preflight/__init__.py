"""``smlplay preflight``: check a deployment against the cluster before anything is allocated.

A dry-run renders the playbook (:mod:`~engine.preflight.inputs` reads what it needs from
that plan); each check then asks the cluster over the run's own transports (the login node's
SSH connection, srun steps into an adopted job) and says ok, fail, warn or skip with a
remedy. :mod:`~engine.preflight.slurm`: partition, account, node and GPU counts;
:mod:`~engine.preflight.nodes`: image and model paths, ports, the framework's flags.
"""

from engine.preflight.checks import Check, Report

__all__ = ["Check", "Report"]
