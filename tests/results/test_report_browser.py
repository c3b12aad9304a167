"""The self-contained report page, opened in real headless Chromium from a file:// URL:
every embedded plot decodes (naturalWidth > 0, at the size figures.json records), the
points table has one row per point, and the page makes no external request."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engine.results.report_files import write_report
from tests.results.browser import CHROMIUM, have_chromium, inspect_page
from tests.results.test_results import run


def test_report_page_renders_in_chromium(tmp_path: Path) -> None:
    if not have_chromium():
        if os.environ.get("CI") == "true":
            pytest.fail(f"chromium not found at {CHROMIUM} (CI=true: this check must run)")
        pytest.skip(f"chromium not found at {CHROMIUM}")
    runs = [run("one", 1), run("two", 2)]
    write_report(runs, tmp_path, title="browser check")
    figs = json.loads((tmp_path / "figures.json").read_text())
    seen = inspect_page(tmp_path / "report.html")
    imgs = seen["imgs"]
    assert [i["alt"] for i in imgs] == list(figs)
    for img in imgs:
        assert img["complete"] and img["w"] > 0 and img["h"] > 0, img
        assert [img["w"], img["h"]] == list(figs[img["alt"]]["size_px"])
    assert seen["rows"] == [r.run_id for r in runs for _ in r.points]
    assert len(seen["rows"]) == sum(len(r.points) for r in runs) == 4
    assert seen["external"] == 0
