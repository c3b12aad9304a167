"""Handlers: notifications recorded (and persisted for `smlplay down`), then flushed."""

from __future__ import annotations

from typing import Any

from engine.errors import SmlplayError
from engine.executor.inherited import Inherited
from engine.executor.planner import PlannerMixin
from engine.executor.results import _plain
from engine.model import Task


class HandlersMixin(PlannerMixin):
    def _persist_notify(self, task: Task, host: str, name: str) -> None:
        """Record a notified handler, rendered now, so ``smlplay down`` can replay it if
        this process dies before the handler runs."""
        play = self._play
        for handler in play.handlers if play else ():
            if name not in {handler.name, handler.display_name, *handler.listen}:
                continue
            entry: dict[str, Any] = {"host": host, "name": name, "handler": handler.display_name, "action": handler.action, "play": play.name if play else ""}
            try:
                entry["args"] = _plain(self.templar.render(handler.args, self.scope_for(host, handler, Inherited())))
            except SmlplayError as exc:
                entry["render_error"] = exc.message
            self.pending_handlers.append(entry)
        self._on_state_change()

    def flush_handlers(self, hosts: list[str], inherited: Inherited) -> set[str]:
        """Run the notified handlers in definition order; returns the hosts a handler failed
        on (the later handlers skip them, and they end the play failed, as in Ansible)."""
        play = self._play
        failed: set[str] = set()
        if play is None:
            return failed
        for handler in play.handlers:
            names = {handler.name, handler.display_name, *handler.listen}
            targets = [h for h in hosts if h not in failed and any(n in names for n in self._host(h).notified)]
            if not targets:
                continue
            self.sink.emit("handler_start", handler=handler.display_name)
            failed |= self.run_task(handler, targets, Inherited(environment=inherited.environment), handler=True)
        for h in hosts:
            self._host(h).notified.clear()
        self.pending_handlers = [p for p in self.pending_handlers if p["host"] not in hosts]
        self._on_state_change()
        return failed


    def run_task(self, task: Task, hosts: list[str], inherited: Inherited, *, handler: bool = False) -> set[str]:
        raise NotImplementedError  # engine.executor.strategy
