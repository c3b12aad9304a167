"""Running a playbook end to end: plan first, then execute, and always tear down.

:func:`execute` is the one entry point the CLI calls for ``smlplay run``:

1. load and validate everything, then render the whole plan (a dry-run) -- any error in
   the input stops here, exit code 2, nothing has started;
2. create the run record and execute, with SIGINT/SIGTERM turned into an orderly stop;
3. run the pending handlers and unwind the teardown stack, whatever happened (unless
   ``--keep-running``): the first Ctrl-C starts teardown, a second one within 3 s aborts it
   and lists what may be left.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import collector, secrets
from engine.errors import Interrupted, SmlplayError
from engine.events import EventSink, Fanout, NullSink
from engine.executor.context import RunControl, RunOptions
from engine.executor.results import _plain
from engine.executor.runner import Runner
from engine.executor.teardown import TeardownStack
from engine.inventory import Inventory
from engine.load.loader import Loader
from engine.model import Playbook
from engine.plan import RenderedPlan
from engine.runs import RunRecord, runs_dir
from engine.transport.base import ProcessRecord
from engine.transport.pool import TransportPool

if TYPE_CHECKING:
    from engine.schedulers.nodewatch import NodeWatch

SECOND_SIGNAL_WINDOW = 3.0


class TeardownAborted(BaseException):
    pass


class RunDirectoryError(SmlplayError):
    """The run record cannot be written (read-only, full, not a directory): exit 2."""

    exit_code = 2


@dataclass(frozen=True)
class Outcome:
    ok: bool
    exit_code: int
    run_dir: Path | None
    recap: dict[str, dict[str, int]]
    plan: list[dict[str, Any]]
    message: str | None = None


def load(playbook_path: str | Path, inventory_path: str | Path | None) -> tuple[Playbook, Inventory, Loader]:
    loader = Loader()
    playbook = loader.load_playbook(playbook_path)
    inventory = Inventory.from_file(inventory_path) if inventory_path else Inventory.implicit()
    return playbook, inventory, loader


def render_plan(
    playbook: Playbook,
    inventory_path: str | Path | None,
    options: RunOptions,
    loader: Loader,
    *,
    sink: EventSink | None = None,
) -> list[dict[str, Any]]:
    """Render every task for every host without executing anything (dry-run)."""
    return render(playbook, inventory_path, options, loader, sink=sink).plays


@secrets.masks_result  # every dry-run format, its TEARDOWN section and plan.json show ********
def render(
    playbook: Playbook,
    inventory_path: str | Path | None,
    options: RunOptions,
    loader: Loader,
    *,
    sink: EventSink | None = None,
) -> RenderedPlan:
    """The dry-run's plan: every step, and what the run would register to undo. Masked:
    every dry-run format and plan.json show ******** for a secret."""
    inventory = Inventory.from_file(inventory_path) if inventory_path else Inventory.implicit()
    secrets.collect_static(playbook, inventory, options.extra_vars)
    runner = Runner(
        playbook,
        inventory,
        replace(options, dry_run=True),
        loader=loader,
        sink=sink or NullSink(),
        run_dir=runs_dir() / "<run-id>",
        run_id="<run-id>",
    )
    runner.run()
    if (error := runner.plan_error()) is not None:
        raise error  # a failure the run cannot avoid (assert, undefined variable)
    return RenderedPlan(secrets.mask(runner.plan), secrets.mask(runner.teardown.entries()), keep_running=options.keep_running)


class _Interrupter:
    """Kills the foreground commands in flight when the run stops (a signal, a critical
    death) -- and again every 0.3 s until the executor reaches its next task boundary: a
    command that was being launched at that moment (an srun step starting a benchmark)
    would otherwise slip through and run to its end. An :class:`EventSink`: the boundary
    is the next task result, handler or teardown, each emitted before its commands start
    (a task that was starting when the stop came still runs: it is interrupted too)."""

    BOUNDARY = frozenset({"task_result", "teardown_start", "recap"})

    def __init__(self, pool: TransportPool) -> None:
        self.pool = pool
        self._lock = threading.Lock()
        self._boundary = threading.Event()
        self._thread: threading.Thread | None = None

    def fire(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._boundary.clear()
            self._thread = threading.Thread(target=self._loop, name="smlplay-interrupter", daemon=True)
        self.pool.interrupt()
        self._thread.start()

    def _loop(self) -> None:
        while not self._boundary.wait(0.3):
            with self._lock:  # emit() waits for an interrupt under way: none after a boundary
                if self._boundary.is_set():
                    return
                self.pool.interrupt()

    def emit(self, kind: str, **data: Any) -> None:
        boundary = kind in self.BOUNDARY or (kind == "task_start" and data.get("handler"))
        if boundary and not self._boundary.is_set():
            with self._lock:
                self._boundary.set()


class _SignalHandler:
    """SIGINT/SIGTERM: the first stops the run and starts teardown; a second one within
    :data:`SECOND_SIGNAL_WINDOW` seconds, during teardown, aborts it.

    A handler runs in the main thread between two bytecodes, possibly while that thread
    holds a sink's or the interrupter's lock (a signal arriving as a task starts): taking
    the same lock here would hang the engine. So the handler only keeps time and raises;
    stopping, the message and killing commands in flight happen on a thread of their own,
    fed through a ``SimpleQueue`` (whose ``put`` is safe in a signal handler)."""

    def __init__(self, control: RunControl, pool: _Interrupter, sink: EventSink) -> None:
        self.control = control
        self.pool = pool
        self.sink = sink
        self.first: float | None = None
        self.tearing_down = False
        self.aborted = False
        self._work: queue.SimpleQueue[tuple[bool, str]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="smlplay-signals", daemon=True)
        self._thread.start()

    def __call__(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        name = signal.Signals(signum).name
        if self.first is None:
            self.first = now
            self._work.put((True, name))
            return
        if self.tearing_down and now - self.first <= SECOND_SIGNAL_WINDOW:
            self.aborted = True
            raise TeardownAborted()
        self.first = now
        self._work.put((False, name))

    def _serve(self) -> None:
        while True:
            first, name = self._work.get()
            if first:
                self.control.request_stop(f"interrupted by {name}")
                self.sink.emit("interrupt", signal=name, message="stopping; teardown will run (press Ctrl-C again within 3 s to abort it)")
                self.pool.fire()
            else:
                self.sink.emit("interrupt", signal=name, message="teardown in progress; press Ctrl-C again within 3 s to abort it")


@contextmanager
def _signals(handler: _SignalHandler) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def execute(
    playbook_path: str | Path,
    inventory_path: str | Path | None,
    options: RunOptions,
    *,
    sink: EventSink,
    argv: list[str] | None = None,
) -> Outcome:
    sink = secrets.masked_sink(sink)  # the console never shows a secret (the record masks its own)
    playbook, inventory, loader = load(playbook_path, inventory_path)
    rendered = render(playbook, inventory_path, options, loader)  # raises on bad input
    plan = rendered.plays
    if options.dry_run:
        return Outcome(True, 0, None, {}, plan)

    try:
        if options.run_id:  # a detached run, now inside its job
            record = RunRecord.open(options.run_id)
            record.update(status="running", pid=os.getpid(), started=time.time(), host=os.uname().nodename)
        else:
            record = RunRecord.create(Path(playbook_path), argv=argv)
        record.write_plan({"playbook": str(playbook_path), **rendered.to_dict()})
    except OSError as exc:  # before anything started: a teardown could not be recorded
        raise RunDirectoryError(
            f"cannot write the run record in the run directory {runs_dir()}: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename else ""),
            hint="nothing was started; point SMLPLAY_RUNS_DIR at a writable directory with free space",
        ) from None
    collector.started()  # what start-up made lives for the whole run (engine.collector)
    control = RunControl()
    record_sink = _RecordSink(record)
    sinks = Fanout(sink, record_sink)
    runner: Runner | None = None

    def save_state() -> None:
        if runner is None:
            return
        record.update(
            hosts=runner.transports.specs(),
            processes=[p.to_dict() for p in runner.processes.all()],
            teardown=runner.teardown.entries(),
            pending_handlers=list(runner.pending_handlers),
        )

    runner = Runner(
        playbook,
        inventory,
        options,
        loader=loader,
        sink=sinks,
        run_dir=record.path,
        run_id=record.id,
        control=control,
        on_state_change=save_state,
    )
    interrupter = _Interrupter(runner.transports)
    sinks.sinks.append(interrupter)
    handler = _SignalHandler(control, interrupter, sinks)
    sinks.emit("run_start", run_id=record.id, run_dir=str(record.path), playbook=str(playbook_path))
    ok = False
    message: str | None = None
    status = "failed"
    with _signals(handler):
        try:
            if not options.dry_run:
                runner.processes.on_lost = lambda lost: sinks.emit("warning", message=lost.warning())
                runner.processes.on_death = lambda d: sinks.emit("process_died", host=d.record.host, name=d.record.name, log=d.record.log, tail=d.tail)
                from engine.schedulers.nodewatch import NodeWatch

                runner.processes.node_watch = NodeWatch(runner.transports.get, vars_for=runner.transports.vars)
                # A death stops foreground commands in flight (a benchmark client would
                # otherwise run to its end before the executor looks between tasks).
                runner.processes.start_monitor(on_death=lambda _death: interrupter.fire())
            try:
                ok = runner.run()
                death = runner.processes.check() if not ok and message is None else None
                if death is not None:  # the task it cut short failed first: say why
                    message = death.message()
                    sinks.emit("run_error", message=message)
                if ok and options.hold:
                    sinks.emit("holding", message="serving until `smlplay down` (or a critical process dies)")
                    while not control.cancel.wait(1.0) and not runner.processes.failure.is_set():
                        pass
                    death = runner.processes.check()
                    if death is not None:
                        ok, message = False, death.message()
                        sinks.emit("run_error", message=message)
            except Exception as exc:  # PlayFailed and friends: the play stops, teardown runs
                message = str(exc)
                sinks.emit("run_error", message=message)
                ok = False
            status = "interrupted" if control.cancel.is_set() else "ok" if ok else "failed"
            if options.keep_running and not control.cancel.is_set():
                status = "kept-running" if ok else status
            record.update(status="tearing-down" if status != "kept-running" else status)
            if status != "kept-running":
                handler.tearing_down = True
                unwind(
                    runner.teardown,
                    runner.processes.all(),
                    runner.transports,
                    sinks,
                    stop_monitor=runner.processes.clear_failure,
                    forget=runner.processes.remove,
                    down=runner.processes.node_watch,
                )
            save_state()
        except TeardownAborted:
            left = [str(e.get("label", e.get("kind"))) for e in runner.teardown.entries()]
            sinks.emit("teardown_aborted", left=left, message="teardown aborted; these may still be running: " + (", ".join(left) or "nothing recorded") + f". Run `smlplay down {record.id}` to finish it.")
            status = "interrupted"
            save_state()
        finally:
            runner.transports.close()
    recap = {h: dict(s.stats) for h, s in sorted(runner.hosts.items())}
    if status == "interrupted" and message is None:
        message = control.reason or "interrupted"
    # what happened, in the record too (`smlplay status` and whoever reads state.json)
    record.update(status=status, ended=time.time(), recap=recap, message=message or record_sink.first_failure)
    sinks.emit("recap", recap=recap, run_dir=str(record.path), status=status)
    record.close()
    exit_code = 0 if status in ("ok", "kept-running") else (130 if status == "interrupted" else 1)
    return Outcome(status in ("ok", "kept-running"), exit_code, record.path, recap, plan, message)


def unwind(
    stack: TeardownStack,
    live: list[ProcessRecord],
    transports: TransportPool,
    sink: EventSink,
    *,
    stop_monitor: Any = None,
    forget: Any = None,
    down: NodeWatch | None = None,
) -> list[str]:
    """Undo everything on the stack, tier by tier (tiers in order, entries of a tier in
    parallel). Returns what could not be undone."""
    if stop_monitor is not None:
        stop_monitor()
    by_key = {(p.host, p.name): p for p in live}
    problems: list[str] = []
    tiers = stack.tiers()
    if not tiers:
        return problems
    sink.emit("teardown_start", entries=len(stack))
    for tier, entries in tiers:
        with cf.ThreadPoolExecutor(max_workers=max(1, min(16, len(entries))), thread_name_prefix="smlplay-teardown") as pool:
            futures = {pool.submit(_undo, e, by_key, transports, down): e for e in entries}
            pending = set(futures)
            while pending:
                done, pending = cf.wait(pending, timeout=0.2)
                for fut in done:
                    entry = futures[fut]
                    try:
                        detail = fut.result()
                        sink.emit("teardown_step", tier=tier, label=entry.get("label", entry["kind"]), status="ok", detail=detail)
                        stack.discard(entry)
                        if entry["kind"] == "process" and forget is not None:
                            forget(entry["host"], entry["name"])
                    except Exception as exc:
                        problems.append(f"{entry.get('label')}: {exc}")
                        sink.emit("teardown_step", tier=tier, label=entry.get("label", entry["kind"]), status="failed", detail=str(exc))
    return problems


def _undo(entry: dict[str, Any], live: dict[tuple[str, str], ProcessRecord], transports: TransportPool, down: NodeWatch | None = None) -> str:
    kind = entry["kind"]
    if kind == "process":
        record = live.get((entry["host"], entry["name"]))
        if record is None:
            return "already stopped"
        if down is not None and (gone := down.stop_if_down(record)) is not None:
            return gone
        transport = transports.get(record.host)
        was_running = transport.stop(record, grace=float(entry.get("grace", 10)))
        return "stopped" if was_running else "had already exited"
    if kind == "command":
        if secrets.MASK in str(entry["cmd"]):  # replayed from state.json, where secrets are masked
            raise SmlplayError(f"'{entry['cmd']}' on {entry['host']} holds a masked secret: run it by hand")
        transport = transports.get(entry["host"])
        result = transport.run(entry["cmd"], timeout=float(entry.get("timeout", 120)))
        if result.rc != 0:
            raise SmlplayError(f"'{entry['cmd']}' on {entry['host']} exited {result.rc}: {result.stderr.strip()[-300:]}")
        return "done"
    raise SmlplayError(f"unknown teardown entry kind {kind!r}")


def down(run: str, *, sink: EventSink, wait: float = 120.0) -> int:
    """Tear down a run from its record: ask a live owner to stop, else replay the pending
    handlers and unwind the persisted teardown stack ourselves."""
    record = RunRecord.open(run)
    if record.owner_alive() and int(record.state["pid"]) != os.getpid():
        sink.emit("down_signal", run_id=record.id, pid=record.state["pid"])
        os.kill(int(record.state["pid"]), signal.SIGTERM)
        deadline = time.monotonic() + wait
        while record.owner_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
            record = RunRecord.open(str(record.path))
        if not record.owner_alive():
            sink.emit("down_done", run_id=record.id, status=record.status)
            return 0
    if not any(record.state.get(k) for k in ("teardown", "processes", "pending_handlers")):
        # a second `down`, or a run that cleaned up after itself: say so, touch nothing
        sink.emit("down_done", run_id=record.id, status=f"nothing to do (status {record.status}: nothing of it is recorded as running or pending)")
        return 0
    hosts = record.state.get("hosts", {})
    transports = TransportPool(lambda h: hosts.get(h, {"connection": "local"}))
    live = [ProcessRecord.from_dict(p) for p in record.state.get("processes", [])]
    problems: list[str] = []
    try:
        for pending in record.state.get("pending_handlers", []):
            problems.extend(_replay_handler(pending, transports, record, sink))
        stack = TeardownStack(lambda entries: record.update(teardown=entries), record.state.get("teardown", []))
        problems += unwind(stack, live, transports, sink)
    finally:
        transports.close()
    record.update(status="down" if not problems else "down-with-errors", processes=[], pending_handlers=[], down_at=time.time())
    sink.emit("down_done", run_id=record.id, status=record.status, problems=problems)
    return 0 if not problems else 1


def _replay_handler(pending: dict[str, Any], transports: TransportPool, record: RunRecord, sink: EventSink) -> list[str]:
    from engine import actions
    from engine.actions.base import ActionContext
    from engine.processes import ProcessRegistry
    from engine.template import Templar
    from engine.vars import VarScope

    label = f"handler '{pending.get('handler')}' on {pending['host']}"
    if "args" not in pending:
        return [f"{label}: could not be rendered when notified ({pending.get('render_error')})"]
    act = actions.get(str(pending["action"]))
    templar = Templar()
    ctx = ActionContext(
        host=pending["host"],
        transport=transports.get(pending["host"]),
        scope=VarScope([], templar),
        templar=templar,
        processes=ProcessRegistry(transports.get),
        run_dir=record.path,
        task_name=str(pending.get("handler")),
        log_path=record.task_log(pending["host"], f"down-{pending.get('handler')}"),
    )
    result = act.run(ctx, dict(pending["args"]))
    sink.emit("teardown_step", tier=-1, label=label, status="failed" if result.get("failed") else "ok", detail=str(result.get("msg", "")))
    return [f"{label}: {result.get('msg')}"] if result.get("failed") else []


class _RecordSink:
    """Appends every event to the run's ``events.jsonl``."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record
        self.first_failure: str | None = None  # what state.json says when no error ended the run

    def emit(self, kind: str, **data: Any) -> None:
        if kind == "health_progress":
            return  # progress lines would flood the record; the result has the summary
        if kind == "task_result" and data.get("status") in ("failed", "unreachable") and not data.get("ignored") and self.first_failure is None:
            result = data.get("result") or {}
            msg = result.get("msg", data.get("status"))
            stderr = str(result.get("stderr") or "").strip().splitlines()
            # "non-zero return code 255" alone does not say why: the last line of stderr does
            self.first_failure = f"task '{data.get('task')}' on {data.get('host')}: {msg}" + (f" (stderr: {stderr[-1][:300]})" if stderr else "")
        self.record.event(kind, **_plain(data))


def excepthook_guard() -> None:
    """Never show a Python traceback for an interrupted run."""
    sys.excepthook = lambda *a: None  # pragma: no cover


__all__ = ["Interrupted", "Outcome", "down", "execute", "load", "render", "render_plan", "unwind"]
