"""``smlplay preflight PLAYBOOK -i INV``: will this deployment fit, before anything is allocated."""

from __future__ import annotations

import sys
from typing import Any

import click

from engine.cli import _guard, _inventory, _options


@click.command()
@click.argument("playbook", type=click.Path(dir_okay=False))
@click.option("-i", "--inventory", "inventory", help="Inventory file (default inventory/local.yaml if present, else implicit localhost).")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, help="k=v, @file.yaml or a JSON mapping; repeatable, last wins.")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True, help="A line per check, or one JSON document.")
@click.option("--strict", is_flag=True, help="Warnings fail too (e.g. a missing model path while the simulator stands in for the framework).")
@_guard
def preflight(playbook: str, output: str, strict: bool, **kw: Any) -> None:
    """Check PLAYBOOK against the cluster without allocating: the partition and account
    exist, the nodes and GPUs asked for fit the partition, the image and model paths exist
    on the login node, the ports are free on the nodes of an adopted job (job_id), and the
    framework's --help accepts every rendered flag. Exit 1 if a check fails."""
    from engine.preflight.run import preflight as run_preflight

    report = run_preflight(playbook, _inventory(kw.get("inventory"), playbook), _options(**kw), strict=strict)
    click.echo(report.to_json() if output == "json" else report.to_text())
    sys.exit(0 if report.ok else 1)
