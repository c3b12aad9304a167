"""Formatting a rendered plan (dry-run) for people, machines and code review.

Output is deterministic: the same playbook, inventory and extra vars give byte-identical
text, JSON and markdown (no timestamps, no run ids, stable ordering), so a plan can be
committed and diffed in review.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine import plan_teardown
from engine.runs import slug

Plan = Sequence[dict[str, Any]]


@dataclass(frozen=True)
class RenderedPlan:
    """A dry-run: every step of every play, and what the run registers to undo (the
    teardown stack's entries, in the order they were pushed)."""

    plays: list[dict[str, Any]]
    teardown: list[dict[str, Any]] = field(default_factory=list)
    keep_running: bool = False  # rendered for --keep-running: teardown waits for `down`

    def teardown_section(self) -> dict[str, Any]:
        return plan_teardown.section(self.plays, self.teardown, keep_running=self.keep_running)

    def to_dict(self) -> dict[str, Any]:
        return {"plays": list(self.plays), "teardown": self.teardown_section()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RenderedPlan:
        """A recorded ``plan.json`` (runs before the teardown was recorded have none)."""
        teardown = data.get("teardown") or {}
        return cls(list(data.get("plays", [])), plan_teardown.entries_of(teardown), teardown.get("when") == plan_teardown.WHEN_KEPT)


def _steps_by_host(play: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The play's steps grouped by host, hosts in the order of their first step, in one
    pass (a scan of every step per host was quadratic: 20 M comparisons at 1024 nodes)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for step in play["steps"]:
        grouped.setdefault(step["host"], []).append(step)
    return grouped


def _step_lines(step: Mapping[str, Any], *, position: bool = True) -> list[str]:
    """A step as the text plan shows it; ``position=False`` leaves out its file:line (a
    plan diff compares what runs, not where the task is written)."""
    head = f"- [{step['action']}] {step['task']}"
    if step.get("label") is not None:
        head += f" (item={json.dumps(step['label'], sort_keys=True)})"
    elif step.get("item") is not None:
        head += f" (item={json.dumps(step['item'], sort_keys=True)})"
    lines = [head, f"    at {step['pos']}"] if position else [head]
    if step.get("delegate_to"):
        lines.append(f"    on {step['delegate_to']} (delegated)")
    if step.get("via"):
        lines.append(f"    via {step['via']}")
    if step.get("condition"):
        lines.append(f"    if {step['condition']}")
    for i, line in enumerate(str(step["detail"]).splitlines() or [""]):
        lines.append(("    $ " if i == 0 else "      ") + line)
    for h in step.get("health", []):
        lines.append(f"    health: {h}")
    if step.get("notify"):
        lines.append(f"    notify: {', '.join(step['notify'])}")
    return lines


def to_text(plan: RenderedPlan) -> str:
    out: list[str] = []
    for play in plan.plays:
        out.append(f"PLAY [{play['name']}] hosts={play['pattern']} -> {', '.join(play['hosts']) or '(none)'}")
        grouped = _steps_by_host(play)
        for host in grouped or play["hosts"]:
            out.append(f"  HOST {host}")
            for step in grouped.get(host, ()):
                out.extend("    " + line for line in _step_lines(step))
        if play.get("handlers"):
            out.append("  HANDLERS (run when notified, and on failure or interrupt)")
            for h in play["handlers"]:
                listen = f" (listen: {', '.join(h['listen'])})" if h.get("listen") else ""
                out.append(f"    - {h['name']}{listen} [{h['action']}] at {h['pos']}")
        out.append("")
    out += [*plan_teardown.text_lines(plan.teardown_section()), ""]
    return "\n".join(out)


def to_markdown(plan: RenderedPlan) -> str:
    out: list[str] = ["# Plan", ""]
    for play in plan.plays:
        out += [f"## Play: {play['name']}", "", f"hosts: `{play['pattern']}` -> {', '.join(f'`{h}`' for h in play['hosts']) or '(none)'}", ""]
        grouped = _steps_by_host(play)
        for host in grouped or play["hosts"]:
            out += [f"### {host}", ""]
            for step in grouped.get(host, ()):
                out.append(f"- **{step['task']}** (`{step['action']}`, {step['pos']})")
                if step.get("via"):
                    out.append(f"  - via {step['via']}")
                if step.get("condition"):
                    out.append(f"  - if `{step['condition']}`")
                out += ["", "  ```", *("  " + line for line in str(step["detail"]).splitlines()), "  ```", ""]
                for h in step.get("health", []):
                    out.append(f"  - health: {h}")
        if play.get("handlers"):
            out += ["#### Handlers", ""] + [f"- {h['name']} (`{h['action']}`)" for h in play["handlers"]] + [""]
    out += plan_teardown.markdown_lines(plan.teardown_section())
    return "\n".join(out)


def relative(plan: RenderedPlan, base: Path) -> RenderedPlan:
    """The plan with every ``file:line`` position relative to ``base`` (the playbook's
    directory), so renderings on different checkouts are byte-identical."""
    root = os.path.abspath(base)
    done: dict[str, str] = {}  # a task's position is the same on each of its 1,000 hosts

    def rel(pos: Any) -> Any:
        if not isinstance(pos, str):
            return pos
        out = done.get(pos)
        if out is None:
            out = done[pos] = os.path.relpath(pos, root) if os.path.isabs(pos) else pos
        return out

    out = []
    for play in plan.plays:
        play = dict(play)
        play["steps"] = [{**step, "pos": rel(step.get("pos"))} for step in play.get("steps", [])]
        if play.get("handlers"):
            play["handlers"] = [{**h, "pos": rel(h.get("pos"))} for h in play["handlers"]]
        if "pos" in play:
            play["pos"] = rel(play["pos"])
        out.append(play)
    return replace(plan, plays=out, teardown=[{**e, "pos": rel(e.get("pos"))} if "pos" in e else e for e in plan.teardown])


def to_json(plan: RenderedPlan) -> str:
    from engine.jsonout import dumps_sorted  # the stdlib's layout, orjson's speed

    return dumps_sorted(plan.to_dict()) + "\n"


FORMATS = {"text": to_text, "json": to_json, "markdown": to_markdown}


def _name(text: str) -> str:
    return slug(text, limit=60, empty="x")


def write_tree(plan: RenderedPlan, out_dir: Path) -> list[Path]:
    """One file per host and step (``NN-play/host/NN-task.txt``) for review diffs."""
    written: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for p_index, play in enumerate(plan.plays, start=1):
        play_dir = out_dir / f"{p_index:02d}-{_name(play['name'])}"
        counters: dict[str, int] = {}
        for step in play["steps"]:
            counters[step["host"]] = counters.get(step["host"], 0) + 1
            host_dir = play_dir / _name(step["host"])
            host_dir.mkdir(parents=True, exist_ok=True)
            path = host_dir / f"{counters[step['host']]:02d}-{_name(step['task'])}.txt"
            path.write_text("\n".join(_step_lines(step)) + "\n", encoding="utf-8")
            written.append(path)
    (out_dir / "plan.txt").write_text(to_text(plan), encoding="utf-8")
    written.append(out_dir / "plan.txt")
    (out_dir / "teardown.txt").write_text("\n".join(plan_teardown.text_lines(plan.teardown_section())) + "\n", encoding="utf-8")
    written.append(out_dir / "teardown.txt")
    return written
