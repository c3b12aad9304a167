"""``smlplay render A --diff B``: what changes on which node between two plans.

Each plan is flattened to one text per node: its steps play by play (the command, where it
runs, health checks, notifications) and the teardown entries that stop things on it, with
file positions left out (moving a task in its YAML file changes nothing on a node). The
nodes' texts are then compared with :mod:`difflib`, so the output reads like ``diff -u``
grouped per node, and its exit status follows diff's: 0 same, 1 different.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.plan import RenderedPlan, _step_lines


def node_texts(plan: RenderedPlan) -> dict[str, list[str]]:
    """One text per node (inventory host): the plays' steps on it, then its teardown."""
    out: dict[str, list[str]] = {}
    last_play: dict[str, int] = {}
    for index, play in enumerate(plan.plays):
        for step in play["steps"]:
            lines = out.setdefault(step["host"], [])
            if last_play.get(step["host"]) != index:
                last_play[step["host"]] = index
                lines.append(f"PLAY {play['name']}")
            head, *rest = _step_lines(step, position=False)
            lines += ["  " + head.removeprefix("- "), *rest]
    for tier in plan.teardown_section()["tiers"]:
        for entry in tier["entries"]:
            lines = out.setdefault(entry["host"], [])
            lines.append(f"TEARDOWN tier {tier['tier']}: {entry['label']}" + (f" (if {entry['condition']})" if entry.get("condition") else ""))
            lines += [f"    $ {line}" for line in entry.get("how", ())]
    return out


@dataclass(frozen=True)
class NodeDiff:
    node: str
    status: str  # changed, added (only in the new plan), removed (only in the old one)
    lines: list[str]  # unified diff lines, without the file headers

    @property
    def added(self) -> int:
        return sum(1 for line in self.lines if line.startswith("+"))

    @property
    def removed(self) -> int:
        return sum(1 for line in self.lines if line.startswith("-"))

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "status": self.status, "added": self.added, "removed": self.removed, "diff": self.lines}


def diff(old: RenderedPlan, new: RenderedPlan, *, context: int = 2) -> list[NodeDiff]:
    """The nodes whose text differs, in name order."""
    a, b = node_texts(old), node_texts(new)
    out = []
    for node in sorted(set(a) | set(b)):
        before, after = a.get(node, []), b.get(node, [])
        if before == after:
            continue
        lines = [line for line in difflib.unified_diff(before, after, lineterm="", n=context)][2:]
        status = "added" if node not in a else "removed" if node not in b else "changed"
        out.append(NodeDiff(node, status, lines))
    return out


def to_text(diffs: Sequence[NodeDiff], old_name: str, new_name: str) -> str:
    if not diffs:
        return f"no differences between {old_name} and {new_name}\n"
    out = [f"--- {old_name}", f"+++ {new_name}"]
    for d in diffs:
        out.append(f"=== node {d.node} ({d.status}: +{d.added} -{d.removed})")
        out += d.lines
    nodes = ", ".join(d.node for d in diffs)
    out.append(f"{len(diffs)} node(s) differ: {nodes}")
    return "\n".join(out) + "\n"


def to_markdown(diffs: Sequence[NodeDiff], old_name: str, new_name: str) -> str:
    out = [f"# Plan diff: `{old_name}` -> `{new_name}`", ""]
    if not diffs:
        return "\n".join([*out, "No differences.", ""])
    for d in diffs:
        out += [f"## {d.node} ({d.status}: +{d.added} -{d.removed})", "", "```diff", *d.lines, "```", ""]
    return "\n".join(out)


def to_json(diffs: Sequence[NodeDiff], old_name: str, new_name: str) -> str:
    data = {"old": old_name, "new": new_name, "same": not diffs, "nodes": [d.to_dict() for d in diffs]}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


FORMATS = {"text": to_text, "json": to_json, "markdown": to_markdown}
