"""Run options and the per-run context, computed once and passed down explicitly."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.vars import Layer

#: Recap columns, in Ansible's order.
STATS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")


@dataclass(frozen=True)
class RunOptions:
    """Everything the command line can change about a run."""

    extra_vars: tuple[Layer, ...] = ()
    forks: int = 16
    tags: frozenset[str] = frozenset()
    skip_tags: frozenset[str] = frozenset()
    limit: str | None = None
    start_at_task: str | None = None
    dry_run: bool = False
    keep_running: bool = False
    verbosity: int = 0
    health_timeout: float | None = None
    #: Hosts this engine runs on (``--local-host``): reached with the local transport
    #: whatever the inventory says (a detached run inside its job, on the login node).
    local_hosts: frozenset[str] = frozenset()
    #: Continue an existing run record (a detached run's job) instead of creating one.
    run_id: str | None = None
    #: After the last play, keep serving until stopped (SIGTERM, `smlplay down`) or a
    #: critical process dies; then tear down. What `--detach --keep-running` runs in the job.
    hold: bool = False


@dataclass
class HostState:
    """What the run knows about one host: facts (registered results, ``set_fact``),
    whether it failed, its recap counters, and the handlers it notified."""

    name: str
    facts: dict[str, Any] = field(default_factory=dict)
    failed: bool = False
    unreachable: bool = False
    stats: Counter[str] = field(default_factory=Counter)
    notified: list[str] = field(default_factory=list)
    ended: bool = False  # meta end_host / end_play, for the current play
    #: meta clear_host_errors ran after this host failed: it takes part in later plays
    errors_cleared: bool = False
    #: The last failure not ignored: (task, result), for a rescue's ``ansible_failed_*``.
    failure: tuple[Any, dict[str, Any]] | None = None
    #: In a dry-run, the error of that failure: a host that ends failed refuses the plan.
    plan_error: Exception | None = None
    #: In a dry-run, an include of this host could not be expanded (its file is decided at
    #: run time): what it would define is unknown, so an undefined variable is not an error.
    open_world: bool = False


@dataclass
class RunControl:
    """Cancellation shared by every thread of the run (set by SIGINT/SIGTERM)."""

    cancel: threading.Event = field(default_factory=threading.Event)
    reason: str | None = None

    def request_stop(self, reason: str) -> None:
        if not self.cancel.is_set():
            self.reason = reason
            self.cancel.set()


@dataclass(frozen=True)
class RunPaths:
    run_dir: Path
    run_id: str
