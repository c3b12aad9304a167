"""The files of a report, written into a run or sweep record's ``report/`` directory:
the plots (PNG + ``figures.json``), ``report.html``, ``results.json`` and ``results.csv``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from engine.results.compare import render_csv, render_json
from engine.results.schema import RunResult
from engine.runs import PRIVATE_FILE_MODE, private_mkdir, private_opener


def write_report(runs: Sequence[RunResult], directory: Path, *, title: str, html: bool = True) -> tuple[Path, ...]:
    from engine.results.plots import write_figures

    private_mkdir(directory)  # a report sits in a run or sweep record: private, as the record
    described = write_figures(runs, directory)
    _write(directory / "figures.json", json.dumps(described, indent=2) + "\n")
    _write(directory / "results.json", render_json(runs) + "\n")
    _write(directory / "results.csv", render_csv(runs))
    files = [directory / name for name in described]
    if html:
        from engine.results.html import render_html

        page = directory / "report.html"
        _write(page, render_html(runs, {n: directory / n for n in described}, title=title))
        files.append(page)
    for path in directory.iterdir():  # the figures matplotlib wrote (with the umask's mode)
        if path.is_file():
            os.chmod(path, PRIVATE_FILE_MODE)
    return tuple(files)


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", opener=private_opener) as f:
        f.write(text)
