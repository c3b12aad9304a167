"""The keywords a block passes down to the tasks inside it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.load.yaml import position_of
from engine.model import Task
from engine.vars import Layer


@dataclass
class Inherited:
    """Keywords a block passes down to its tasks."""

    layers: tuple[Layer, ...] = ()
    when: tuple[tuple[Any, Any], ...] = ()  # (expression, position)
    tags: frozenset[str] = frozenset()
    ignore_errors: bool = False
    environment: tuple[Mapping[str, Any], ...] = ()
    no_log: bool = False
    delegate_to: Any = None
    run_once: bool = False

    def enter(self, block: Task) -> Inherited:
        layers = self.layers
        if block.vars:
            layers = (*layers, Layer("task vars", f"block at {block.pos}", block.vars))
        return Inherited(
            layers=layers,
            when=self.when + tuple((w, position_of(w) or block.pos) for w in block.when),
            tags=self.tags | block.tags,
            ignore_errors=self.ignore_errors or block.ignore_errors is True,
            environment=self.environment + ((block.environment,) if block.environment else ()),
            no_log=self.no_log or block.no_log,
            delegate_to=block.delegate_to or self.delegate_to,
            run_once=self.run_once or block.run_once is True,
        )

