"""What Slurm says about a job, as plain frozen data parsed from ``squeue --json``.

``squeue --json`` is used instead of a ``-o`` format string because names, reasons and node
lists can contain the separator of any format string, and because it carries the start time
from which the time used is computed. Its schema moves between Slurm versions, so the
parser accepts both shapes seen in the wild:

* 22.05 (openapi v0.0.38): ``"job_state": "RUNNING"``, numbers as plain ints or ``null``;
* 23.02 and newer: ``"job_state": ["RUNNING", "COMPLETING"]``, numbers as
  ``{"set": true, "infinite": false, "number": 42}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from engine.errors import SchedulerError
from engine.slurm.hostlist import expand

__all__ = ["FINISHED_STATES", "HOPELESS_REASONS", "JobInfo", "parse_squeue_json"]

FINISHED_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
)
"""Base states of a job that will never run (again)."""

HOPELESS_REASONS = frozenset(
    {
        "AccountNotAllowed",
        "AssocMaxCpuPerJobLimit",
        "AssocMaxGRESPerJob",
        "AssocMaxNodesPerJobLimit",
        "AssocMaxWallDurationPerJobLimit",
        "BadConstraints",
        "DependencyNeverSatisfied",
        "InvalidAccount",
        "InvalidQOS",
        "PartitionConfig",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "QOSMaxCpuPerJobLimit",
        "QOSMaxGRESPerJob",
        "QOSMaxNodePerJobLimit",
        "QOSMaxWallDurationPerJobLimit",
        "QOSMinGRES",
    }
)
"""Pending reasons that no amount of waiting resolves: the request itself does not fit.

Per-user or group limits (``QOSMaxNodePerUserLimit``, ``AssocGrpGRES``) are not listed:
they clear when the user's other jobs end."""


@dataclass(frozen=True)
class JobInfo:
    """One job as ``squeue`` reports it. Times are Unix seconds; ``time_used`` seconds."""

    job_id: str
    name: str
    state: str
    reason: str
    nodes: tuple[str, ...]
    node_count: int
    partition: str = ""
    user: str = ""
    state_flags: tuple[str, ...] = ()
    submit_time: int | None = None
    start_time: int | None = None
    end_time: int | None = None
    time_limit_min: int | None = None
    time_used: float = 0.0

    @classmethod
    def from_json(cls, job: Mapping[str, Any], *, now: float) -> JobInfo:
        """Parse one element of ``squeue --json``'s ``jobs``; ``now`` dates ``time_used``."""
        states = _states(job.get("job_state"))
        state = states[0] if states else "UNKNOWN"
        nodes = tuple(expand(str(job.get("nodes") or "")))
        node_count = _number(job.get("node_count"))
        start = _number(job.get("start_time"))
        end = _number(job.get("end_time"))
        info = cls(
            job_id=str(job.get("job_id", "")),
            name=str(job.get("name") or ""),
            state=state,
            state_flags=tuple(states[1:]),
            reason=str(job.get("state_reason") or "None"),
            nodes=nodes,
            node_count=node_count if node_count is not None else len(nodes),
            partition=str(job.get("partition") or ""),
            user=str(job.get("user_name") or ""),
            submit_time=_number(job.get("submit_time")),
            start_time=start,
            end_time=end,
            time_limit_min=_number(job.get("time_limit")),
        )
        return _with_time_used(info, now)

    @property
    def is_pending(self) -> bool:
        return self.state == "PENDING"

    @property
    def is_running(self) -> bool:
        """Running and usable: ``srun`` steps can start (a CONFIGURING job's nodes boot)."""
        return self.state == "RUNNING" and "CONFIGURING" not in self.state_flags

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def is_active(self) -> bool:
        """Still holds (or waits for) resources: what plain ``squeue`` lists."""
        return not self.is_finished

    @property
    def is_hopeless(self) -> bool:
        """Pending for a reason that waiting will not fix (see :data:`HOPELESS_REASONS`)."""
        return self.is_pending and self.reason in HOPELESS_REASONS

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "name": self.name,
            "state": self.state,
            "state_flags": list(self.state_flags),
            "reason": self.reason,
            "nodes": list(self.nodes),
            "node_count": self.node_count,
            "partition": self.partition,
            "user": self.user,
            "submit_time": self.submit_time,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "time_limit_min": self.time_limit_min,
            "time_used": round(self.time_used, 1),
        }


def parse_squeue_json(text: str, *, now: float) -> tuple[JobInfo, ...]:
    """Parse the whole output of ``squeue --json``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchedulerError(
            f"squeue --json printed something that is not JSON ({exc}): {text[:200]!r}"
        ) from None
    if not isinstance(data, Mapping) or not isinstance(data.get("jobs", []), list):
        raise SchedulerError(f"squeue --json printed an unexpected document: {text[:200]!r}")
    errors = [e for e in data.get("errors") or [] if e]
    if errors:
        raise SchedulerError(f"squeue --json reported errors: {errors}")
    return tuple(JobInfo.from_json(job, now=now) for job in data.get("jobs") or [])


def _states(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value]


def _number(value: Any) -> int | None:
    """A Slurm number: plain (22.05) or ``{"set", "infinite", "number"}`` (23.02+).

    ``None`` means unset or infinite (an unlimited time limit, a job not yet started)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Mapping):
        if not value.get("set", True) or value.get("infinite", False):
            return None
        value = value.get("number")
        if value is None:
            return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _with_time_used(info: JobInfo, now: float) -> JobInfo:
    start = info.start_time or 0
    if info.is_pending or start <= 0:
        used = 0.0
    elif info.is_finished and info.end_time and info.end_time >= start:
        used = float(info.end_time - start)
    else:
        used = max(0.0, now - start)
    return replace(info, time_used=used)
