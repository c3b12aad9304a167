"""``smlplay report RUN_OR_SWEEP [...]``: tables, a comparison, plots and an HTML page."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from engine.cli import _console, _guard


@click.command()
@click.argument("targets", nargs=-1, required=True, metavar="RUN_OR_SWEEP...")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "json", "markdown"]), default="text", show_default=True, help="How the tables are printed.")
@click.option("--html", "html", is_flag=True, help="Also write report.html: one self-contained page (tables and plots embedded).")
@click.option("--out", type=click.Path(file_okay=False), help="Where the plots (and page) go (default: the record's report/ for one run or sweep, else runs/reports/<time>).")
@click.option("--no-plots", is_flag=True, help="Print the tables only; write nothing.")
@_guard
def report(targets: tuple[str, ...], fmt: str, html: bool, out: str | None, no_plots: bool) -> None:
    """Report runs or sweeps: a table per run, a comparison across runs (deltas vs the first,
    the better value marked), PNG plots (throughput per GPU vs tokens/s per user with the
    Pareto frontier; TTFT and TPOT vs concurrency) and, with --html, one page."""
    from engine.results import compare
    from engine.results.load import resolve
    from engine.runs import runs_dir

    runs, sweep_dir = resolve(list(targets))
    runs = [r for r in runs if r.points] or runs
    if not any(r.points for r in runs):
        from engine.errors import ValidationError

        raise ValidationError(f"no benchmark results in {', '.join(targets)} (no results/ with a parsed point)")
    if fmt == "text":
        compare.render_text(runs, _console())
    else:
        text = {"csv": compare.render_csv, "json": compare.render_json, "markdown": compare.render_markdown}[fmt](runs)
        click.echo(text, nl=not text.endswith("\n"))
    if no_plots:
        return
    if out:
        directory = Path(out)
    elif sweep_dir is not None:
        directory = sweep_dir / "report"
    elif len(runs) == 1 and runs[0].path:
        directory = Path(runs[0].path) / "report"
    else:
        directory = runs_dir() / "reports" / time.strftime("%Y%m%d-%H%M%S")
    from engine.results.report_files import write_report

    title = sweep_dir.name if sweep_dir is not None else ", ".join(r.name for r in runs)
    files = write_report(runs, directory, title=f"smlplay report: {title}", html=html)
    for path in files:
        click.echo(f"wrote {path}", err=fmt != "text")
    sys.stdout.flush()
