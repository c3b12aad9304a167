"""Which log files of a run belong to a task: its own task logs and the logs of the
background processes it started (named by the ``log`` of its recorded results)."""

from __future__ import annotations

from pathlib import Path

from engine.runs import RunRecord, slug


def task_logs(record: RunRecord, task: str | None) -> list[Path]:
    """Every ``*.log`` of the run when ``task`` is None; else the logs whose name holds the
    task's name, plus the process logs that the matching tasks' results point at."""
    every = sorted((record.path / "logs").rglob("*.log"))
    if task is None:
        return every
    wanted = slug(task).lower()
    chosen = {p for p in every if wanted in p.name.lower()}
    for host, log in result_logs(record, task):
        path = Path(log)
        path = path if path.is_absolute() else record.path / path
        if not path.exists():  # a remote host's log: its local copy has the same name
            path = record.path / "logs" / slug(host) / Path(log).name
        if path.exists():
            chosen.add(path)
    return sorted(chosen)


def result_logs(record: RunRecord, task: str) -> list[tuple[str, str]]:
    """``(host, log)`` of every result of the tasks whose name holds ``task``, as recorded
    (the path on the host that ran it, which may not exist here)."""
    found = []
    for event in record.events():
        if event.get("event") != "task_result" or task.lower() not in str(event.get("task", "")).lower():
            continue
        log = (event.get("result") or {}).get("log")
        if log:
            found.append((str(event.get("host")), str(log)))
    return found
