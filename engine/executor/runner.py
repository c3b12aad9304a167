"""The executor: plays, blocks, tasks, loops, handlers -- the linear strategy.

A task runs on all its hosts in parallel (a thread pool bounded by ``forks``), then the
next task starts. The same code renders a dry-run: with ``dry_run`` set, actions are not
called, each rendered task is recorded as a plan step, and values that only exist after
execution (registered results) are :class:`~engine.template.Unknown` placeholders.

The parts, one module each, layered as mixins over :class:`RunnerState`:
:mod:`~engine.executor.scope` (variables), :mod:`~engine.executor.keywords` (per-host
keywords), :mod:`~engine.executor.planner` (the dry-run's plan),
:mod:`~engine.executor.handlers`, :mod:`~engine.executor.task` (one task on one host) and
:mod:`~engine.executor.strategy` (plays, blocks, includes).
"""

from __future__ import annotations

from engine.executor.inherited import Inherited
from engine.executor.planner import PlanStep
from engine.executor.results import _plain
from engine.executor.roleargs import _type_problem, check_role_arguments
from engine.executor.scope import HostVars
from engine.executor.state import PlayFailed, RunnerState
from engine.executor.strategy import StrategyMixin

__all__ = [
    "HostVars",
    "Inherited",
    "PlanStep",
    "PlayFailed",
    "Runner",
    "RunnerState",
    "_plain",
    "_type_problem",
    "check_role_arguments",
]


class Runner(StrategyMixin):
    """Runs (or, with ``options.dry_run``, renders) a playbook against an inventory."""
