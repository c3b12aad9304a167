"""Typed teardown entries: what a run registers to undo, and how a plan tells it.

The run's teardown stack (:mod:`engine.executor.teardown`) persists plain JSON dicts, so
``smlplay down RUN`` can unwind a run from another process. These frozen dataclasses are
the one place that builds and reads those dicts: the ``process`` action and
``slurm_allocate`` register them when they run, a dry-run registers the very same ones,
and the plan's TEARDOWN section describes each with :meth:`how`, for the transport that
will undo it (the steps mirror ``stop()`` of :mod:`engine.transport.local`, ``ssh`` and
``srun``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.units import format_duration

Entry = dict[str, Any]

#: What each tier holds (the stack unwinds tier 0 first; a tier's entries in parallel).
TIERS: dict[int, str] = {0: "benchmarks and clients", 1: "workers and router", 2: "sidecars", 3: "the allocation"}


def _grace(seconds: float) -> str:
    return f"{seconds:g}s" if seconds < 60 else format_duration(seconds)


@dataclass(frozen=True)
class StopProcess:
    """Stop a background process: SIGTERM, ``grace`` seconds, then SIGKILL."""

    host: str
    name: str
    tier: int = 1
    grace: float = 10.0

    kind = "process"

    @property
    def label(self) -> str:
        return f"stop {self.name}@{self.host}"

    def to_dict(self) -> Entry:
        return {"kind": self.kind, "host": self.host, "name": self.name, "tier": self.tier, "grace": self.grace, "label": self.label}

    def how(self, connection: Mapping[str, Any]) -> list[str]:
        """The commands that stop it, for the host's connection variables."""
        grace = _grace(self.grace)
        kind = str(connection.get("connection", "local"))
        if kind == "srun":
            from engine.slurm.commands import scancel_argv

            job, node = connection.get("slurm_job_id"), connection.get("slurm_node")
            gateway = connection.get("srun_gateway", "localhost")
            step = f"<step of {self.name}>"  # the id Slurm gives the step named NAME.NODE
            return [
                f"on {gateway}: {' '.join(scancel_argv(str(job), step=step, signal='TERM'))}   (SIGTERM to the srun step {self.name}.{node})",
                f"wait up to {grace} (grace) for the step to end",
                f"on {gateway}: {' '.join(scancel_argv(str(job), step=step))}   (SIGKILL), then stop its srun client",
            ]
        where = "on this machine"
        if kind == "ssh":
            user = f"{connection['ssh_user']}@" if connection.get("ssh_user") else ""
            where = f"on {user}{connection.get('ssh_host', self.host)} (ssh)"
        group = f"<pgid of {self.name}>"
        return [
            f"{where}: kill -TERM -- -{group}   (its process group)",
            f"wait up to {grace} (grace) for the group to exit",
            f"{where}: kill -KILL -- -{group}",
        ]


@dataclass(frozen=True)
class RunCommand:
    """Run a command on a host (e.g. ``scancel JOB`` to release an allocation)."""

    host: str
    cmd: str
    tier: int
    label: str
    timeout: float = 120.0

    kind = "command"

    def to_dict(self) -> Entry:
        return {"kind": self.kind, "host": self.host, "cmd": self.cmd, "tier": self.tier, "label": self.label, "timeout": self.timeout}

    def how(self, connection: Mapping[str, Any]) -> list[str]:
        where = "on this machine"
        if connection.get("connection") == "ssh":
            user = f"{connection['ssh_user']}@" if connection.get("ssh_user") else ""
            where = f"on {user}{connection.get('ssh_host', self.host)} (ssh)"
        elif connection.get("connection") == "srun":
            where = f"on node {connection.get('slurm_node')} (srun step)"
        return [f"{where}: {self.cmd}   (fails the teardown if it exits non-zero; {_grace(self.timeout)} timeout)"]


TeardownEntry = StopProcess | RunCommand


def release_allocation(gateway: str, cmd: str) -> RunCommand:
    """The allocation's release: last (tier 3), after every step on its nodes stopped."""
    return RunCommand(host=gateway, cmd=cmd, tier=3, label=f"release the allocation ({cmd})")


def from_dict(entry: Mapping[str, Any]) -> TeardownEntry:
    """A persisted entry, typed (records written before ``timeout`` was stored included)."""
    kind = entry.get("kind")
    if kind == "process":
        return StopProcess(host=str(entry["host"]), name=str(entry["name"]), tier=int(entry.get("tier", 1)), grace=float(entry.get("grace", 10)))
    if kind == "command":
        return RunCommand(
            host=str(entry["host"]),
            cmd=str(entry["cmd"]),
            tier=int(entry.get("tier", 1)),
            label=str(entry.get("label", entry["cmd"])),
            timeout=float(entry.get("timeout", 120)),
        )
    from engine.errors import SmlplayError

    raise SmlplayError(f"unknown teardown entry kind {kind!r}")
