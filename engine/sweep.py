"""Sweeps over deployments: one run record per point of a grid (or a zip) of ``-e`` values.

``smlplay run PB --sweep layout.decode.workers=1,2 --sweep layout.prefill.tp=1,2`` runs four
points one after another, each a normal run (plan, execute, tear down) whose extra vars are
the user's ``-e`` layers plus the point's dotted values (the same strings ``-e k=v`` gives).
The sweep record ``runs/<sweep-id>/sweep.json`` lists the points, their states and run ids;
each point's run record holds ``sweep_point.json`` (its sweep and parameters).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import SmlplayError, ValidationError
from engine.events import EventSink
from engine.executor.context import RunOptions
from engine.runs import PRIVATE_DIR_MODE, RunRecord, runs_dir, slug, write_json_atomic
from engine.vars import Layer

_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_-]+)*$")
#: Point states that leave nothing running.
FINISHED = ("ok", "failed", "interrupted", "not-run", "down")


@dataclass(frozen=True)
class SweepAxis:
    """One ``--sweep PATH=V1,V2,...`` option."""

    path: str
    values: tuple[str, ...]

    @classmethod
    def from_option(cls, text: str) -> SweepAxis:
        path, sep, raw = text.partition("=")
        path = path.strip()
        if not sep or not _PATH.match(path):
            raise ValidationError(
                f"--sweep {text!r}: expected PATH=V1,V2,... with a dotted variable path",
                hint="e.g. --sweep layout.decode.workers=1,2 --sweep layout.prefill.tp=4,8",
            )
        values = tuple(v.strip() for v in _split(raw))
        if not values or any(v == "" for v in values):
            raise ValidationError(f"--sweep {text!r}: give one or more comma-separated values")
        if len(set(values)) != len(values):
            raise ValidationError(f"--sweep {text!r}: a value is repeated")
        return cls(path, values)


def _split(raw: str) -> Iterator[str]:
    """Commas separate values, except inside brackets: ``benchmark.concurrencies=[1,8],[32]``."""
    depth, start = 0, 0
    for i, ch in enumerate(raw):
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            yield raw[start:i]
            start = i + 1
    yield raw[start:]


@dataclass(frozen=True)
class SweepPoint:
    index: int
    params: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        """``decode.workers=1 prefill.tp=2``: the parameters without a prefix they all share."""
        keys = [k for k, _ in self.params]
        heads = {k.split(".", 1)[0] for k in keys}
        strip = len(heads) == 1 and all("." in k for k in keys)
        return " ".join(f"{k.split('.', 1)[1] if strip else k}={v}" for k, v in self.params)

    @property
    def slug(self) -> str:
        return slug(self.label.replace("=", "-").replace(" ", "_"), limit=80)

    def layer(self) -> Layer:
        return Layer("extra vars", f"--sweep {self.label}", dict(self.params))


def expand(axes: list[SweepAxis], *, zip_axes: bool = False) -> list[SweepPoint]:
    """Every combination (the first axis varies slowest), or with ``zip_axes`` the i-th
    values of every axis together."""
    if not axes:
        return []
    paths = [a.path for a in axes]
    if len(set(paths)) != len(paths):
        raise ValidationError(f"--sweep: {', '.join(sorted({p for p in paths if paths.count(p) > 1}))} swept twice")
    if zip_axes:
        lengths = {a.path: len(a.values) for a in axes}
        if len(set(lengths.values())) != 1:
            raise ValidationError(
                "--zip needs the same number of values on every --sweep: "
                + ", ".join(f"{p} has {n}" for p, n in lengths.items())
            )
        combos: list[tuple[str, ...]] = list(zip(*(a.values for a in axes), strict=True))
    else:
        combos = list(itertools.product(*(a.values for a in axes)))
    return [SweepPoint(i + 1, tuple(zip(paths, combo, strict=True))) for i, combo in enumerate(combos)]


class SweepRecord:
    """``runs/<sweep-id>/sweep.json``: the points, their states, their run ids."""

    def __init__(self, path: Path, state: dict[str, Any]) -> None:
        self.path = path
        self.id = path.name
        self.state = state

    @property
    def points(self) -> list[dict[str, Any]]:
        return list(self.state.get("points", []))

    @classmethod
    def create(cls, playbook: Path, axes: list[SweepAxis], points: list[SweepPoint], *, zip_axes: bool, argv: list[str]) -> SweepRecord:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        path = runs_dir() / f"{stamp}-sweep-{slug(playbook.stem)}-{secrets.token_hex(2)}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=False)  # private, as a run record
        os.chmod(path, PRIVATE_DIR_MODE)
        record = cls(path, {
            "sweep_id": path.name,
            "playbook": str(playbook),
            "argv": argv,
            "mode": "zip" if zip_axes else "grid",
            "axes": {a.path: list(a.values) for a in axes},
            "status": "running",
            "started": time.time(),
            "points": [
                {"index": p.index, "name": p.label, "params": dict(p.params), "state": "pending", "run_id": None, "message": None}
                for p in points
            ],
        })
        record.save()
        return record

    @classmethod
    def find(cls, target: str) -> SweepRecord | None:
        """By path, id, unique id prefix or ``last``; None when ``target`` names no sweep."""
        candidate = Path(target)
        if (candidate / "sweep.json").is_file():
            return cls.open(candidate)
        base = runs_dir()
        sweeps = sorted(p for p in base.glob("*") if (p / "sweep.json").is_file()) if base.is_dir() else []
        if target in ("last-sweep",):
            matches = sweeps[-1:]
        else:
            matches = [p for p in sweeps if p.name == target] or [p for p in sweeps if p.name.startswith(target)]
        return cls.open(matches[0]) if len(matches) == 1 else None

    @classmethod
    def open(cls, path: Path) -> SweepRecord:
        return cls(path, json.loads((path / "sweep.json").read_text(encoding="utf-8")))

    def save(self) -> None:
        write_json_atomic(self.path / "sweep.json", self.state)

    def update_point(self, index: int, **changes: Any) -> None:
        for point in self.state["points"]:
            if point["index"] == index:
                point.update(changes)
        self.save()


@dataclass(frozen=True)
class SweepOutcome:
    record: SweepRecord
    exit_code: int
    report_files: tuple[Path, ...] = ()


Echo = Callable[[str], None]


def run_sweep(
    playbook: str,
    inventory: str | None,
    options: RunOptions,
    points: list[SweepPoint],
    axes: list[SweepAxis],
    *,
    zip_axes: bool,
    fail_fast: bool,
    sink_factory: Callable[[], EventSink],
    echo: Echo,
    argv: list[str],
) -> SweepOutcome:
    """Run every point in order; a failed point is recorded and the sweep goes on (unless
    ``fail_fast``); an interrupted point stops the sweep. Then the sweep's report."""
    from engine.executor.run import execute

    if options.keep_running or options.hold:
        raise ValidationError("--sweep runs its points one after another, each torn down before the next: --keep-running does not apply")
    sweep = SweepRecord.create(Path(playbook), axes, points, zip_axes=zip_axes, argv=argv)
    echo(f"sweep {sweep.id}: {len(points)} points -> {sweep.path}")
    worst = 0
    for point in points:
        record = RunRecord.create(Path(playbook), argv=argv, name=point.slug)
        write_json_atomic(record.path / "sweep_point.json", {"sweep_id": sweep.id, "index": point.index, "name": point.label, "params": dict(point.params)})
        sweep.update_point(point.index, state="running", run_id=record.id)
        echo(f"sweep point {point.index}/{len(points)} [{point.label}] -> run {record.id}")
        point_options = replace(options, extra_vars=(*options.extra_vars, point.layer()), run_id=record.id)
        try:
            outcome = execute(playbook, inventory, point_options, sink=sink_factory(), argv=argv)
            code, message = outcome.exit_code, outcome.message
        except SmlplayError as err:  # this point's values make bad input: nothing started
            code, message = err.exit_code, err.message
            record.update(status="failed", error=message, pid=None)
        state = "ok" if code == 0 else "interrupted" if code == 130 else "failed"
        reason = None if state == "ok" else failure_reason(record.path) or message
        sweep.update_point(point.index, state=state, message=reason, exit_code=code)
        echo(f"sweep point {point.index}/{len(points)} [{point.label}]: {state}" + (f": {reason}" if reason else ""))
        worst = max(worst, code if code != 130 else 0)
        if state == "interrupted" or (fail_fast and state == "failed"):
            for rest in points[point.index:]:
                sweep.update_point(rest.index, state="not-run", message=f"the sweep stopped at point {point.index} ({state})")
            if state == "interrupted":
                worst = 130
            break
    failed = [p for p in sweep.points if p["state"] != "ok"]
    sweep.state.update(status="ok" if not failed else "interrupted" if worst == 130 else "failed", ended=time.time())
    sweep.save()
    files = write_report_files(sweep.path, sweep=sweep, echo=echo)
    echo(f"sweep {sweep.id}: {len(points) - len(failed)} of {len(points)} points ok")
    for p in failed:
        echo(f"  point {p['index']} [{p['name']}]: {p['state']}" + (f": {p['message']}" if p.get("message") else ""))
    return SweepOutcome(sweep, worst if failed else 0, files)


def failure_reason(run_dir: Path) -> str | None:
    """The last failed task of a run, named with its host: why the point failed."""
    path = run_dir / "events.jsonl"
    if not path.exists():
        return None
    reason = None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "task_result" and event.get("status") == "failed" and not event.get("ignored"):
            msg = str((event.get("result") or {}).get("msg") or "failed").strip()
            reason = f"task '{event.get('task')}' on {event.get('host')}: {' '.join(msg.split())}"
        elif event.get("event") == "run_error" and reason is None:
            reason = str(event.get("message"))
    return reason


def write_report_files(target: Path, *, sweep: SweepRecord | None = None, echo: Echo | None = None) -> tuple[Path, ...]:
    """Plots and the HTML page of a run or sweep record, written into it (nothing when no
    point produced results). Returns the paths written."""
    from engine.results.load import load_run
    from engine.results.report_files import write_report

    if sweep is not None:
        runs = []
        for p in sweep.points:
            if p.get("run_id") and (sweep.path.parent / p["run_id"] / "results").is_dir():
                try:
                    runs.append(load_run(str(sweep.path.parent / p["run_id"])))
                except SmlplayError:
                    continue
    else:
        runs = [load_run(str(target))] if (target / "results").is_dir() else []
    runs = [r for r in runs if r.points]
    if not runs:
        return ()
    files = write_report(runs, target / "report", title=target.name)
    if echo is not None:
        for f in files:
            echo(f"report: {f}")
    return files


def dry_run(playbook: str, inventory: str | None, options: RunOptions, points: list[SweepPoint], *, fmt: str, echo: Echo) -> None:
    """Render every point's plan (bad values fail here, naming the point) and list them."""
    from engine.executor.run import load, render_plan

    rows = []
    for point in points:
        book, _inv, loader = load(playbook, inventory)
        try:
            plan = render_plan(book, inventory, replace(options, extra_vars=(*options.extra_vars, point.layer())), loader)
        except SmlplayError as err:
            err.message = f"sweep point {point.index} [{point.label}]: {err.message}"
            raise
        rows.append({"index": point.index, "name": point.label, "params": dict(point.params), "steps": sum(len(p["steps"]) for p in plan), "plan": plan})
    if fmt == "json":
        echo(json.dumps({"playbook": playbook, "points": rows}, indent=2, default=str))
        return
    echo(f"sweep of {playbook}: {len(rows)} points (dry run: nothing started)")
    for row in rows:
        echo(f"  point {row['index']}: {row['name']}  ({row['steps']} rendered steps)")


def down_sweep(sweep: SweepRecord, *, sink: EventSink, echo: Echo) -> int:
    """Tear down whatever the sweep's points left: each run that is not finished, or that
    still records processes or teardown entries."""
    from engine.executor.run import down

    worst, torn = 0, 0
    for p in sweep.points:
        if not p.get("run_id"):
            continue
        try:
            record = RunRecord.open(str(sweep.path.parent / p["run_id"]))
        except SmlplayError:
            continue
        left = record.state.get("processes") or record.state.get("teardown") or record.state.get("pending_handlers")
        if record.status in ("down",) or (record.status in FINISHED and not left):
            continue
        echo(f"sweep point {p['index']} [{p['name']}]: tearing down run {record.id} ({record.status})")
        code = down(str(record.path), sink=sink)
        worst, torn = max(worst, code), torn + 1
        sweep.update_point(p["index"], state="down" if code == 0 else p["state"])
    if not torn:
        # every point was torn down when it ended: say so, and keep the sweep's status
        # (ok / failed) rather than overwrite it with "down"
        states = ", ".join(f"{n} {s}" for s, n in _counts(p["state"] for p in sweep.points))
        echo(f"sweep {sweep.id}: nothing left running ({len(sweep.points)} points: {states})")
        return 0
    sweep.state.update(status="down" if worst == 0 else "down-with-errors")
    sweep.save()
    return worst


def _counts(items: Iterator[str]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return list(counts.items())
