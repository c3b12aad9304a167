"""``smlplay logs RUN``: a run's task and process logs; ``-f`` follows them all."""

from __future__ import annotations

import json
from pathlib import Path

import click

from engine.cli import _guard


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option("--task", help="Only logs of tasks whose name contains this (and of the processes they started).")
@click.option("--follow", "-f", is_flag=True, help="Follow every log, each line prefixed by its process, until the run ends (or Ctrl-C).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Text, or one JSON object per line (source, path, line).")
@_guard
def logs(run_id: str, task: str | None, follow: bool, output: str) -> None:
    """Print a run's task and process logs."""
    from engine.errors import ValidationError
    from engine.logfollow import Follower, LogLine, follow_run
    from engine.runlogs import task_logs
    from engine.runs import RunRecord

    record = RunRecord.open(run_id)
    if task and not task_logs(record, task):
        raise ValidationError(f"no logs in run {record.id} match task '{task}'", hint="`smlplay logs RUN` lists every log; task names are matched by substring")
    if output == "json":
        def as_json(line: LogLine) -> None:
            click.echo(json.dumps(line.to_dict(), sort_keys=True))

        if follow:
            follow_run(record, as_json, task=task)
        else:
            for line in Follower(record, task).poll(final=True):
                as_json(line)
        return
    if follow:
        width = [0]

        def prefixed(line: LogLine) -> None:
            width[0] = max(width[0], len(line.source))
            click.echo(f"{line.source:<{width[0]}} | {line.line}")

        follow_run(record, prefixed, task=task)
        return
    for path in task_logs(record, task):  # the files one after the other, as `tail` shows them
        data = path.read_bytes()
        if data:
            click.echo(f"==> {_relative(path, record.path)} <==")
            click.echo(data.decode("utf-8", "replace"), nl=not data.endswith(b"\n"))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
