"""The sweep side of ``smlplay run`` (``--sweep``), and the report printed after a run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from engine.cli import _inventory, _options


def run_sweep_command(playbook: str, sweeps: tuple[str, ...], *, zip_axes: bool, fail_fast: bool, dry_run: bool, fmt: str, output: str, **kw: Any) -> None:
    from engine.errors import ValidationError
    from engine.sweep import SweepAxis, expand, run_sweep
    from engine.sweep import dry_run as sweep_dry_run

    if kw.get("detach"):
        raise ValidationError("--sweep cannot be combined with --detach (yet): run the sweep from the login node")
    axes = [SweepAxis.from_option(s) for s in sweeps]
    points = expand(axes, zip_axes=zip_axes)
    inventory = _inventory(kw.get("inventory"), playbook)
    options = _options(**{k: v for k, v in kw.items() if k != "detach"})
    if dry_run:
        sweep_dry_run(playbook, inventory, options, points, fmt=fmt, echo=click.echo)
        return
    from engine.live import make_sink

    def sink() -> Any:
        return make_sink(output, kw.get("verbose", 0))

    outcome = run_sweep(
        playbook, inventory, options, points, axes,
        zip_axes=zip_axes, fail_fast=fail_fast, sink_factory=sink, echo=click.echo, argv=sys.argv[1:],
    )
    sys.exit(outcome.exit_code)


def report_run(run_dir: Path) -> None:
    """After ``smlplay run``: the run's plots and page, their paths printed. A report that
    cannot be made never changes the run's exit code."""
    from engine.errors import SmlplayError
    from engine.sweep import write_report_files

    try:
        write_report_files(run_dir, echo=click.echo)
    except SmlplayError as err:
        click.echo(f"report: not written ({err.message})", err=True)
