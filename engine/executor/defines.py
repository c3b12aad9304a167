"""What a task list may define when it runs: the names its ``register`` and ``set_fact`` set.

A dry-run walks one path (nothing fails in it unless a check does), so the tasks of a
``rescue`` it did not take still decide, at run time, variables later tasks read. Those
names are "decided at run time" for the plan, never "undefined".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from engine.model import Task


def names_defined(tasks: Iterable[Task]) -> set[str]:
    """Names the tasks (blocks included, recursively) register or ``set_fact``; literal
    keys only (an include's tasks are not known before it runs)."""
    names: set[str] = set()
    stack = list(tasks)
    while stack:
        task = stack.pop()
        stack.extend((*task.block, *task.rescue, *task.always))
        if task.register:
            names.add(task.register)
        if task.action == "set_fact" and isinstance(task.args, Mapping):
            names.update(str(k) for k in task.args if k != "cacheable" and "{{" not in str(k))
    return names
