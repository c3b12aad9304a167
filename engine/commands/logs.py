"""``smlplay logs RUN``: a run's task and process logs; ``-f`` follows them all."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from engine.cli import _guard

if TYPE_CHECKING:
    from engine.logfollow import LogLine


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option("--task", help="Only logs of tasks whose name contains this (and of the processes they started).")
@click.option("--follow", "-f", is_flag=True, help="Follow every log, each line prefixed by its process, until the run ends (or Ctrl-C).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Text, or one JSON object per line (source, path, line).")
@_guard
def logs(run_id: str, task: str | None, follow: bool, output: str) -> None:
    """Print a run's task and process logs (those on SSH hosts and srun nodes read there)."""
    from engine.errors import ValidationError
    from engine.logfollow import Follower, follow_run
    from engine.runlogs import task_logs
    from engine.runs import RunRecord

    record = RunRecord.open(run_id)
    if task and not task_logs(record, task) and not Follower(record, task).remote():
        raise ValidationError(f"no logs in run {record.id} match task '{task}'", hint="`smlplay logs RUN` lists every log; task names are matched by substring")
    emit = _emitter(output, follow)
    if follow:
        errors = follow_run(record, emit, task=task)
    else:
        follower = Follower(record, task)
        try:
            for line in follower.poll(final=True):
                emit(line)
            errors = follower.errors()
        finally:
            follower.close()
    for host, why in sorted(errors.items()):
        click.echo(f"warning: could not read the logs on {host}: {why}", err=True)


def _emitter(output: str, follow: bool) -> Callable[[LogLine], None]:
    """JSON lines; prefixed lines when following many logs at once; else each log after a
    ``==> path <==`` header, as ``tail`` shows several files."""
    if output == "json":
        return lambda line: click.echo(json.dumps(line.to_dict(), sort_keys=True))
    if follow:
        width = [0]

        def prefixed(line: LogLine) -> None:
            width[0] = max(width[0], len(line.source))
            click.echo(f"{line.source:<{width[0]}} | {line.line}")

        return prefixed
    current = [""]

    def with_headers(line: LogLine) -> None:
        if line.path != current[0]:
            current[0] = line.path
            click.echo(f"==> {line.path} <==")
        click.echo(line.line)

    return with_headers
