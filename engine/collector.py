"""How the ``smlplay`` process uses Python's garbage collector.

Start-up makes most of the objects a run lives on: the modules, the playbook model, the
inventory, the plan (~60k for a 50-task playbook). The collector counts allocations and,
with the default thresholds, walks the young objects every 700 and the older ones every
7,000: over a start-up that allocates and keeps that much, 85 young and 8 middle
collections walk the same survivors again and again (~20 ms of a 0.5 s run, before the
first task). So:

- :func:`start_up` (the entry point, first thing): collect only every 100,000 allocations
  (still bounded: a 1024-node plan allocates millions and still collects);
- :func:`started` (the run is about to execute its first task, or the command is not a
  run): move every object alive now to the permanent generation (``gc.freeze``), which the
  collector never walks again, and restore the thresholds, so a long run collects its own
  garbage as usual;
- :func:`started` with ``short_lived`` (a dry-run: it computes its plan, prints it and
  exits): after every full collection, freeze what survived it. Survivors of a full
  collection are alive, and most stay so (the plan); later full collections then walk only
  what is new instead of the whole growing plan. A 1024-node dry-run: full collections
  take about a sixth of the time (0.17-0.19 s -> 0.03 s in a quiet minute, 0.46-0.52 s ->
  0.07-0.11 s in a busy one), for +15 MiB peak (cycles that die after being frozen are never
  collected, which only a process that is about to exit can afford);
- :func:`at_exit` (the process is about to end): freeze everything, so the interpreter's
  last collection has nothing to walk (a 200-task run made ~45 ms of it).

Only the ``smlplay`` process does this (:func:`engine.cli.entry`): in-process callers of
:func:`engine.cli.main` (the tests) keep their collector as it is, since cycles among
frozen objects are never collected. The state kept here is the process's collector's.
"""

from __future__ import annotations

import gc

START_UP_THRESHOLD = 100_000

_saved: list[tuple[int, int, int]] = []  # the thresholds start_up replaced (one process, one entry)


def start_up() -> None:
    """The process starts: collect rarely until :func:`started`."""
    if not _saved:
        _saved.append(gc.get_threshold())
        gc.set_threshold(START_UP_THRESHOLD, 100, 100)


def started(*, short_lived: bool = False) -> None:
    """Start-up is over: freeze what it made, then collect as usual (``short_lived``: and
    freeze what survives each full collection). A no-op unless :func:`start_up` ran (the
    process's entry point), and after the first call."""
    if _saved:
        gc.freeze()
        gc.set_threshold(*_saved.pop())
        if short_lived:
            gc.callbacks.append(_freeze_survivors)


def _freeze_survivors(phase: str, info: dict[str, int]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def at_exit() -> None:
    """The process is about to end: nothing left is worth walking."""
    gc.freeze()
