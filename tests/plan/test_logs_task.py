"""`smlplay logs RUN --task`: finds the task's logs and its processes' logs; no match exits 2."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from engine.cli import main
from engine.runs import RunRecord


def _record(tmp_path: Path) -> RunRecord:
    book = tmp_path / "demo.yaml"
    book.write_text("- hosts: localhost\n  tasks: []\n")
    record = RunRecord.create(book, base=tmp_path / "runs")
    proc_log = record.process_log("localhost", "web")
    proc_log.write_text("Serving HTTP on 127.0.0.1 port 18080\n")
    record.task_log("localhost", "start the web server").write_text("$ start web\n")
    record.event("task_start", task="start the web server", hosts=["localhost"])
    record.event("task_result", task="start the web server", host="localhost", status="changed", result={"log": str(proc_log), "name": "web"})
    record.update(status="ok")
    return record


def test_task_filter_finds_the_processes_it_started(tmp_path: Path) -> None:
    record = _record(tmp_path)
    out = CliRunner().invoke(main, ["logs", str(record.path), "--task", "start the web server"])
    assert out.exit_code == 0, out.output
    assert "Serving HTTP on 127.0.0.1 port 18080" in out.output
    assert "logs/localhost/web.process.log" in out.output


def test_task_filter_matching_nothing_says_so(tmp_path: Path) -> None:
    record = _record(tmp_path)
    out = CliRunner().invoke(main, ["logs", str(record.path), "--task", "no such task"])
    assert out.exit_code == 2
    assert "no logs" in out.output
