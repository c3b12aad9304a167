"""What the benchmarks share: their command line, the child-process clock, medians, fits.

Every bench measures whole processes side by side and reports medians (a shared 2-core
machine: ratios measured in the same rounds count, not absolute times)::

    from _common import REPO, bench_parser, median_of, timed, write_json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def bench_parser(doc: str | None, *, runs: int = 3, runs_help: str | None = None, json_out: bool = True) -> argparse.ArgumentParser:
    """The parser every bench starts from: the first paragraph of its docstring as the
    description, ``--runs`` (measured rounds) and ``--json PATH`` (the raw timings)."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=runs, help=runs_help)
    if json_out:
        parser.add_argument("--json", type=Path, help="also write the raw timings here")
    return parser


def write_json(path: Path | None, data: Any) -> None:
    """``--json PATH``: the raw timings, when asked for."""
    if path:
        path.write_text(json.dumps(data, indent=2))


def timed(argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None, capture: bool = True) -> dict[str, float]:
    """Whole-process wall time, the child's CPU time (user + system) and its peak RSS, from
    ``wait4`` (``getrusage(RUSAGE_CHILDREN)`` is a running maximum over all children).
    ``capture``: keep the output to show if it fails (else it goes to /dev/null, for a
    child that writes megabytes). A failed child ends the bench with its output."""
    start = time.perf_counter()
    out_to = subprocess.PIPE if capture else subprocess.DEVNULL
    proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env) if env is not None else None, stdout=out_to, stderr=subprocess.STDOUT if capture else subprocess.PIPE)
    stream = proc.stdout if capture else proc.stderr
    out = stream.read() if stream else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed (exit {code}):\n{out.decode(errors='replace')[-3000:]}")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss * scale / 2**20}


def median_of(rows: Iterable[Mapping[str, Any]], key: str) -> float | None:
    """The median of ``key`` over the rows that have it (None when none has)."""
    values = [r[key] for r in rows if key in r]
    return statistics.median(values) if values else None


def fit(rows: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Least squares ``y = a + b * x`` over ``(x, y)`` rows: (a, b)."""
    xs, ys = [r[0] for r in rows], [r[1] for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in rows) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b
