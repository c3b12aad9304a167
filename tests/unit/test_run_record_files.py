"""The run record's files: events.jsonl stays open between events yet is always whole on
disk, and every file the engine appends to is private (0600)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from engine.runs import RunRecord, append_private


def _events_on_disk(record: RunRecord) -> list[dict[str, object]]:
    return [json.loads(line) for line in (record.path / "events.jsonl").read_text().splitlines()]


def test_each_event_is_on_disk_as_soon_as_it_is_written(tmp_path: Path) -> None:
    book = tmp_path / "demo.yaml"
    book.write_text("- hosts: localhost\n  tasks: []\n")
    record = RunRecord.create(book, base=tmp_path / "runs")
    record.event("task_start", task="a")
    assert [e["event"] for e in _events_on_disk(record)] == ["task_start"]  # a follower sees it now
    record.event("task_result", task="a", status="ok")
    assert [e["event"] for e in _events_on_disk(record)] == ["task_start", "task_result"]
    record.close()
    record.event("recap", status="ok")  # a closed record opens the file again
    assert [e["event"] for e in _events_on_disk(record)] == ["task_start", "task_result", "recap"]
    assert stat.S_IMODE(os.stat(record.path / "events.jsonl").st_mode) == 0o600
    record.close()
    record.close()  # twice is harmless


def test_closing_releases_the_descriptor(tmp_path: Path) -> None:
    book = tmp_path / "demo.yaml"
    book.write_text("- hosts: localhost\n  tasks: []\n")
    record = RunRecord.create(book, base=tmp_path / "runs")
    before = len(os.listdir("/proc/self/fd"))
    record.event("task_start", task="a")
    assert len(os.listdir("/proc/self/fd")) == before + 1
    record.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_append_private_creates_0600_and_appends(tmp_path: Path) -> None:
    log = tmp_path / "task.log"
    old = os.umask(0)
    try:
        append_private(log, "$ true\n")
        append_private(log, "[stdout]\nhé\n")
    finally:
        os.umask(old)
    assert log.read_text(encoding="utf-8") == "$ true\n[stdout]\nhé\n"
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
