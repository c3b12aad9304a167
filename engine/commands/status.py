"""``smlplay status RUN``: the run's state and a table of its processes."""

from __future__ import annotations

import json

import click

from engine.cli import _guard


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True, help="A table for people, or JSON.")
@click.option("--probe/--no-probe", default=True, show_default=True, help="Ask remote hosts (SSH, srun through an SSH gateway) whether each process still runs; else only processes of this machine are checked.")
@_guard
def status(run_id: str, output: str, probe: bool) -> None:
    """Show a run's status, its processes (node, step, state, uptime, log) and pending teardown."""
    from engine.runs import RunRecord
    from engine.runstatus import status_data, status_text

    record = RunRecord.open(run_id)
    job_state = None
    if record.state.get("detached"):
        from engine.executor.detach import detached_job_state

        job_state = detached_job_state(record)
    # a detached run's processes are checked from inside its job, not from here
    data = status_data(record, probe=probe and not record.state.get("detached"), job_state=job_state)
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        click.echo(status_text(data), nl=False)
