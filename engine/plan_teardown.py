"""The plan's TEARDOWN section: how the run will be undone, in the order it will be.

Built from what the dry-run registered on its teardown stack (the same entries a run
registers, :mod:`engine.undo`) and ordered by the stack's own :meth:`TeardownStack.tiers`,
so the plan cannot disagree with the run. Handlers come first: a play's notified handlers
run at its end (after a failure or Ctrl-C too), before the stack unwinds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.executor.teardown import TeardownStack
from engine.undo import TIERS

WHEN = "when the run ends, fails or is interrupted; with --keep-running, at `smlplay down RUN` instead"
WHEN_KEPT = "--keep-running: not when the run ends (unless it fails or is interrupted); `smlplay down RUN` does it"


def _handlers(plays: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for play in plays:
        handlers = play.get("handlers") or ()
        if not handlers:
            continue
        # one pass over the steps, not one per handler (13,000 steps at 1024 nodes)
        steps = play["steps"]
        notifying: dict[str, list[int]] = {}
        named: dict[tuple[str, str], list[int]] = {}
        for index, s in enumerate(steps):
            for name in s.get("notify", ()):
                notifying.setdefault(name, []).append(index)
            named.setdefault((s["task"], s["action"]), []).append(index)
        for handler in handlers:
            names = {handler["name"], *handler.get("listen", ())}
            by = sorted({i for name in names for i in notifying.get(name, ())})
            notified_by = [{"task": steps[i]["task"], "host": steps[i]["host"]} for i in by]
            # the dry-run plans a notified handler as a step of its play, named as the handler
            runs = [
                {"host": steps[i]["host"], "detail": steps[i]["detail"]}
                for i in named.get((handler["name"], handler["action"]), ())
                if str(handler["pos"]).startswith(steps[i]["pos"] + ":")
            ]
            out.append({"play": play["name"], **handler, "notified_by": notified_by, "runs": runs})
    return out


def section(plays: Sequence[Mapping[str, Any]], entries: Sequence[Mapping[str, Any]], *, keep_running: bool = False) -> dict[str, Any]:
    """The section as data (what ``--format json`` prints under ``teardown``)."""
    stops = {
        (s["host"], str((s.get("args") or {}).get("name"))): s["task"]
        for play in plays
        for s in play["steps"]
        if s["action"] == "stop" and isinstance(s.get("args"), Mapping)
    }
    marked = [{**e, "stopped_by": stops[(e["host"], e["name"])]} if e.get("kind") == "process" and (e["host"], e["name"]) in stops else dict(e) for e in entries]
    stack = TeardownStack(entries=marked)
    tiers = [{"tier": tier, "holds": TIERS.get(tier, "other"), "entries": list(group)} for tier, group in stack.tiers()]
    return {"when": WHEN_KEPT if keep_running else WHEN, "handlers": _handlers(plays), "tiers": tiers}


def entries_of(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The registrations back from :func:`section`'s data (a recorded plan.json), in an
    order the stack groups the same way."""
    return [dict(e) for tier in data.get("tiers", ()) for e in reversed(tier["entries"])]


def text_lines(data: Mapping[str, Any]) -> list[str]:
    out = [f"TEARDOWN ({data['when']})"]
    if data["handlers"]:
        out.append("  HANDLERS that can run (at the end of their play when notified; before the tiers below)")
        for h in data["handlers"]:
            listen = f" (listen: {', '.join(h['listen'])})" if h.get("listen") else ""
            out.append(f"    - [{h['action']}] {h['name']}{listen} in play '{h['play']}' at {h['pos']}")
            for n in h["notified_by"]:
                out.append(f"        notified by '{n['task']}' on {n['host']}")
            if not h["notified_by"]:
                out.append("        notified by no task of this plan")
            for r in h["runs"]:
                out.append(f"        on {r['host']}: $ {str(r['detail']).splitlines()[0] if r['detail'] else ''}")
    if not data["tiers"]:
        out.append("  nothing registered: the run starts no background process and allocates nothing")
    for tier in data["tiers"]:
        parallel = ", in parallel" if len(tier["entries"]) > 1 else ""
        out.append(f"  TIER {tier['tier']} ({tier['holds']}{parallel})")
        for e in tier["entries"]:
            out.append(f"    - {e['label']}")
            out.append(f"        registered by '{e.get('task', '?')}' at {e.get('pos', '?')}")
            if e.get("condition"):
                out.append(f"        if {e['condition']}")
            if e.get("stopped_by"):
                out.append(f"        stopped earlier by task '{e['stopped_by']}' (then teardown finds it gone)")
            out.extend(f"        $ {line}" for line in e.get("how", ()))
    return out


def markdown_lines(data: Mapping[str, Any]) -> list[str]:
    out = ["## Teardown", "", f"_{data['when']}_", ""]
    if data["handlers"]:
        out += ["### Handlers that can run", ""]
        for h in data["handlers"]:
            by = ", ".join(f"`{n['task']}` on `{n['host']}`" for n in h["notified_by"]) or "no task of this plan"
            out.append(f"- **{h['name']}** (`{h['action']}`, play `{h['play']}`, {h['pos']}), notified by {by}")
        out.append("")
    for tier in data["tiers"]:
        out += [f"### Tier {tier['tier']}: {tier['holds']}", ""]
        for e in tier["entries"]:
            cond = f", if `{e['condition']}`" if e.get("condition") else ""
            cond += f", stopped earlier by `{e['stopped_by']}`" if e.get("stopped_by") else ""
            out.append(f"- **{e['label']}** (from `{e.get('task', '?')}`, {e.get('pos', '?')}{cond})")
            out += ["", "  ```", *(f"  {line}" for line in e.get("how", ())), "  ```", ""]
    if not data["tiers"]:
        out += ["Nothing registered: the run starts no background process and allocates nothing.", ""]
    return out
