"""Task names are rendered: an undefined-at-run-time value never shows up as ``None``."""

from __future__ import annotations

from pathlib import Path

from engine.events import ListSink
from engine.executor.context import RunOptions
from engine.executor.run import load, render_plan

REPO = Path(__file__).resolve().parents[2]


def test_local_default_container_play_names_no_none() -> None:
    inventory = REPO / "inventory" / "local.yaml"
    book, _inv, loader = load(REPO / "playbooks" / "llama70b.yaml", inventory)
    sink = ListSink()
    render_plan(book, inventory, RunOptions(), loader, sink=sink)
    titles = [d["task"] for kind, d in sink.events if kind == "task_start"]
    assert any(t.startswith("container-up : the image exists") or t.startswith("the image exists") for t in titles), titles
    assert not [t for t in titles if "None" in t]
