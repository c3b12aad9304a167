"""What a run holds: the playbook, inventory, hosts' state, transports, processes, plan."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.events import EventSink
from engine.executor.context import HostState, RunControl, RunOptions
from engine.executor.ports import PortBook
from engine.executor.teardown import TeardownStack
from engine.inventory import Inventory
from engine.load.loader import Loader
from engine.model import Play, Playbook
from engine.processes import ProcessRegistry
from engine.template import Templar
from engine.transport.pool import TransportPool
from engine.vars import Layer


class PlayFailed(Exception):
    pass



class RunnerState:
    """The state every part of the runner reads; the parts are mixins over it."""

    def __init__(
        self,
        playbook: Playbook,
        inventory: Inventory,
        options: RunOptions,
        *,
        loader: Loader,
        sink: EventSink,
        run_dir: Path,
        run_id: str,
        control: RunControl | None = None,
        teardown: TeardownStack | None = None,
        on_state_change: Callable[[], None] | None = None,
        templar: Templar | None = None,
    ) -> None:
        self.playbook = playbook
        self.inventory = inventory
        self.options = options
        self.loader = loader
        self.sink = sink
        self.run_dir = run_dir
        self.run_id = run_id
        self.control = control or RunControl()
        self.templar = templar or Templar()
        self.hosts: dict[str, HostState] = {}
        self.transports = TransportPool(self._connection_vars)
        self.ports = PortBook()
        self._on_state_change = on_state_change or (lambda: None)
        self.processes = ProcessRegistry(self.transports.get, on_change=self._on_state_change)
        self.teardown = teardown or TeardownStack(lambda _e: self._on_state_change())
        self.plan: list[dict[str, Any]] = []
        self._play: Play | None = None
        self._play_layers: list[Layer] = []
        self._public_defaults: list[Layer] = []  # the play's static roles (scope.py)
        self._public_vars: list[Layer] = []
        self._play_hosts: list[str] = []
        self._started_at_task = options.start_at_task is None
        self.pending_handlers: list[dict[str, Any]] = []
        self.task_logs: dict[str, Path] = {}

    def plan_error(self) -> Exception | None:
        """After a dry-run: the error of a failure the run cannot avoid (a host that ended
        failed: an `assert`, an undefined variable on every path), or None."""
        return next((s.plan_error for s in self.hosts.values() if s.failed and s.plan_error is not None), None)

    def _host(self, name: str) -> HostState:
        state = self.hosts.get(name)
        if state is None:
            state = self.hosts[name] = HostState(name)
        return state

    def _connection_vars(self, host: str) -> Mapping[str, Any]:
        raise NotImplementedError  # engine.executor.scope
