"""The scheduler contract: turn an allocation request into nodes the engine can reach.

``slurm_allocate`` is one action over pluggable schedulers (:data:`SCHEDULERS`): ``slurm``
(sbatch a holding job, wait until it runs, reach each node with ``srun`` steps through a
gateway host) and ``local`` (N virtual nodes on this machine, the embedded default), so the
same playbook runs on a laptop and on a cluster. A scheduler returns an :class:`Allocation`:
plain data the action turns into inventory hosts and groups.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.schedulers.layout import Layout
from engine.slurm.request import AllocationRequest
from engine.transport.base import Transport

#: Set in a detached run's batch job (``smlplay run --detach``): the first ``slurm_allocate``
#: with the slurm scheduler adopts this job instead of submitting another.
ADOPT_ENV = "SMLPLAY_ADOPT_JOB_ID"

__all__ = ["ADOPT_ENV", "Allocation", "AllocationSpec", "Hooks", "Node", "Scheduler"]


@dataclass(frozen=True)
class AllocationSpec:
    """What a ``slurm_allocate`` task asks for, validated once."""

    request: AllocationRequest
    layout: Layout
    gateway: str  # inventory host that runs the Slurm commands and carries srun steps
    job_id: str | None = None  # reuse a running job instead of submitting one
    address: str = "nodeaddr"  # nodeaddr | hostname | command
    address_command: str = "hostname -i"
    timeout: float = 1800.0  # how long to wait for the job to start
    poll: float = 1.0
    node_prefix: str = "node"  # local scheduler: virtual node names
    local_address: str = "127.0.0.1"


@dataclass(frozen=True)
class Node:
    """One allocated node: its inventory name, address and how the engine reaches it."""

    name: str
    address: Any  # str, or a dry-run placeholder
    index: int
    connection: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Allocation:
    scheduler: str
    job_id: Any  # str, None for the local scheduler, a placeholder in a dry-run
    nodes: tuple[Node, ...]
    owned: bool  # submitted by this run, so this run releases it
    gpus_per_node: int | None = None

    def to_dict(self, groups: Mapping[str, list[str]]) -> dict[str, Any]:
        return {
            "scheduler": self.scheduler,
            "job_id": None if self.job_id is None else str(self.job_id),
            "nodes": [n.name for n in self.nodes],
            "addresses": {n.name: str(n.address) for n in self.nodes},
            "groups": {g: list(h) for g, h in groups.items()},
            "owned": self.owned,
        }


@dataclass
class Hooks:
    """How a scheduler talks back to the run while it allocates."""

    progress: Callable[[str], None]
    #: Called with the release command the moment a job exists, before waiting for it, so
    #: a Ctrl-C while it is still pending cancels it too.
    on_submitted: Callable[[str], None]
    cancel: threading.Event


class Scheduler(Protocol):
    name: str

    def allocate(self, spec: AllocationSpec, gateway: Transport, hooks: Hooks) -> Allocation:
        """Get the nodes (blocking until they are usable)."""
        ...

    def placeholder(self, spec: AllocationSpec) -> Allocation:
        """What a dry-run shows: the nodes as far as they can be known before running."""
        ...

    def release_command(self, job_id: Any) -> str | None:
        """The command (run on the gateway) that releases a job this run submitted."""
        ...
