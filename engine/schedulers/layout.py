"""How the nodes of an allocation are split into inventory groups.

A layout is an ordered mapping ``group -> count`` read top to bottom: each group takes the
next ``count`` nodes nobody took yet. A group may instead *share* nodes of an earlier group
(``{count: 1, on: prefill}``: the router runs on the first prefill node), which is how a
small deployment fits a router or a benchmark client beside a worker without asking Slurm
for another node::

    layout:
      prefill: 1
      decode: 1
      router: {count: 1, on: prefill}
      bench: {count: 1, on: router}

The allocation size defaults to the number of nodes the layout takes; an allocation larger
than that leaves the rest in the ``nodes`` group only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import ValidationError

__all__ = ["Layout", "Slot"]

_GROUP = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Slot:
    """One group of the layout: ``count`` nodes, fresh or shared with group ``on``."""

    group: str
    count: int
    on: str | None = None


@dataclass(frozen=True)
class Layout:
    slots: tuple[Slot, ...] = ()

    @classmethod
    def from_vars(cls, data: Mapping[str, Any] | None) -> Layout:
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise ValidationError("layout must be a mapping of group name to node count")
        slots: list[Slot] = []
        seen: set[str] = set()
        for group, value in data.items():
            group = str(group)
            if not _GROUP.match(group) or group in ("all", "nodes", "ungrouped"):
                raise ValidationError(
                    f"layout group {group!r} is not a usable group name",
                    hint="use letters, digits and _; 'all', 'nodes' and 'ungrouped' are reserved",
                )
            on = None
            count: Any = value
            if isinstance(value, Mapping):
                unknown = sorted(set(value) - {"count", "on"})
                if unknown:
                    raise ValidationError(
                        f"layout group '{group}': unknown field(s) {', '.join(unknown)}",
                        hint="a group is a count, or {count: N, on: EARLIER_GROUP}",
                    )
                count = value.get("count", 1)
                on = value.get("on")
                if on is not None and str(on) not in seen:
                    raise ValidationError(
                        f"layout group '{group}' shares nodes with '{on}', which is not an earlier group",
                        hint=f"earlier groups: {', '.join(sorted(seen)) or 'none'}",
                    )
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                raise ValidationError(f"layout group '{group}': count must be a non-negative integer, not {count!r}")
            slots.append(Slot(group, count, str(on) if on is not None else None))
            seen.add(group)
        layout = cls(tuple(slots))
        for slot in layout.slots:
            if slot.on is not None and slot.count > layout._size(slot.on):
                raise ValidationError(
                    f"layout group '{slot.group}' wants {slot.count} node(s) of '{slot.on}', which has {layout._size(slot.on)}"
                )
        return layout

    def _size(self, group: str) -> int:
        return next(s.count for s in self.slots if s.group == group)

    @property
    def nodes_needed(self) -> int:
        """How many distinct nodes the layout takes."""
        return sum(s.count for s in self.slots if s.on is None)

    def assign(self, nodes: Sequence[str]) -> dict[str, list[str]]:
        """Split ``nodes`` (in allocation order) into the layout's groups."""
        if len(nodes) < self.nodes_needed:
            raise ValidationError(
                f"the layout needs {self.nodes_needed} node(s) but the allocation has {len(nodes)}",
                hint="ask for more nodes or shrink the layout",
            )
        groups: dict[str, list[str]] = {}
        taken = 0
        for slot in self.slots:
            if slot.on is None:
                groups[slot.group] = list(nodes[taken : taken + slot.count])
                taken += slot.count
            else:
                groups[slot.group] = groups[slot.on][: slot.count]
        return groups
