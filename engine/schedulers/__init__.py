"""Schedulers behind ``slurm_allocate``: :mod:`.slurm` (real Slurm) and :mod:`.local`.

The names below load on first use (PEP 562): every run imports :mod:`.nodewatch` from
this package, and a run without allocations should not import the Slurm modules for it
(about 10 ms of a short run's start-up).
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.schedulers.base import Allocation, AllocationSpec, Hooks, Node, Scheduler
    from engine.schedulers.layout import Layout, Slot
    from engine.schedulers.local import LocalScheduler
    from engine.schedulers.slurm import SlurmScheduler

    SCHEDULERS: dict[str, Scheduler]

_HOMES = {
    "Allocation": "base",
    "AllocationSpec": "base",
    "Hooks": "base",
    "Node": "base",
    "Scheduler": "base",
    "Layout": "layout",
    "Slot": "layout",
    "LocalScheduler": "local",
    "SlurmScheduler": "slurm",
}

__all__ = [
    "SCHEDULERS",
    "Allocation",
    "AllocationSpec",
    "Hooks",
    "Layout",
    "LocalScheduler",
    "Node",
    "Scheduler",
    "Slot",
    "SlurmScheduler",
]


_lock = threading.RLock()  # hosts allocate in parallel threads: one registry, built once


def __getattr__(name: str) -> Any:
    with _lock:
        if name in globals():
            return globals()[name]
        return _load(name)


def _load(name: str) -> Any:
    if name == "SCHEDULERS":
        from engine.schedulers.local import LocalScheduler
        from engine.schedulers.slurm import SlurmScheduler

        value: Any = {"local": LocalScheduler(), "slurm": SlurmScheduler()}
    elif name in _HOMES:
        value = getattr(importlib.import_module(f"engine.schedulers.{_HOMES[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # once: SCHEDULERS stays one registry
    return value
