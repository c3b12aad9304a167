"""The files of a report, written into a run or sweep record's ``report/`` directory:
the plots (PNG + ``figures.json``), ``report.html``, ``results.json`` and ``results.csv``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from engine.results.compare import render_csv, render_json
from engine.results.schema import RunResult


def write_report(runs: Sequence[RunResult], directory: Path, *, title: str, html: bool = True) -> tuple[Path, ...]:
    from engine.results.plots import write_figures

    directory.mkdir(parents=True, exist_ok=True)
    described = write_figures(runs, directory)
    (directory / "figures.json").write_text(json.dumps(described, indent=2) + "\n", encoding="utf-8")
    (directory / "results.json").write_text(render_json(runs) + "\n", encoding="utf-8")
    (directory / "results.csv").write_text(render_csv(runs), encoding="utf-8")
    files = [directory / name for name in described]
    if html:
        from engine.results.html import render_html

        page = directory / "report.html"
        page.write_text(render_html(runs, {n: directory / n for n in described}, title=title), encoding="utf-8")
        files.append(page)
    return tuple(files)
