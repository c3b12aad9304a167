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


def started() -> None:
    """Start-up is over: freeze what it made, then collect as usual. A no-op unless
    :func:`start_up` ran (the process's entry point), and after the first call."""
    if _saved:
        gc.freeze()
        gc.set_threshold(*_saved.pop())


def at_exit() -> None:
    """The process is about to end: nothing left is worth walking."""
    gc.freeze()
