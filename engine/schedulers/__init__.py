"""Schedulers behind ``slurm_allocate``: :mod:`.slurm` (real Slurm) and :mod:`.local`."""

from engine.schedulers.base import Allocation, AllocationSpec, Hooks, Node, Scheduler
from engine.schedulers.layout import Layout, Slot
from engine.schedulers.local import LocalScheduler
from engine.schedulers.slurm import SlurmScheduler

SCHEDULERS: dict[str, Scheduler] = {"local": LocalScheduler(), "slurm": SlurmScheduler()}

__all__ = ["SCHEDULERS", "Allocation", "AllocationSpec", "Hooks", "Layout", "LocalScheduler", "Node", "Scheduler", "Slot", "SlurmScheduler"]
