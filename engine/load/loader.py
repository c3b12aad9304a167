"""Build the frozen model from YAML files: playbooks, task files, roles.

The parts, one module each: :mod:`~engine.load.paths` (search paths),
:mod:`~engine.load.fields` (single task fields), :mod:`~engine.load.tasks`,
:mod:`~engine.load.roles`, :mod:`~engine.load.includes` (static imports); this module adds
playbooks and plays.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.errors import Position, ValidationError
from engine.load import schema as S
from engine.load.fields import _as_strs, _as_tuple
from engine.load.includes import IncludeLoader
from engine.load.paths import YAML_SUFFIXES, builtin_roles_dir, default_roles_path, find_yaml
from engine.load.roles import _role_key
from engine.load.yaml import YList, load_file, position_of
from engine.model import Play, Playbook, Role, Task

__all__ = ["YAML_SUFFIXES", "Loader", "builtin_roles_dir", "default_roles_path", "find_yaml"]


class Loader(IncludeLoader):
    """Loads playbooks and roles; roles are parsed once and cached by name."""

    # -- playbooks -----------------------------------------------------------------------
    def load_playbook(self, path: str | Path) -> Playbook:
        p = Path(path)
        if self._roles_path is None:
            self._roles_path = default_roles_path(p.parent)
        data = load_file(p)
        plays_data = S.require_list(data, what="a playbook (a list of plays)", pos=Position(str(p), 1, 1))
        if not plays_data:
            raise ValidationError("the playbook has no plays", pos=Position(str(p), 1, 1))
        plays = tuple(self._play(item, p, i) for i, item in enumerate(plays_data))
        return Playbook(path=p, plays=plays, source=p.read_text(encoding="utf-8"))

    def _play(self, data: Any, path: Path, index: int) -> Play:
        pos = plays_pos(data, path)
        play = S.require_mapping(data, what=f"play #{index + 1}", pos=pos)
        S.validate(S.PLAY, play, what="play")
        name = str(play.get("name") or f"play #{index + 1}")
        where = f"play '{name}'"
        roles = tuple(self.role_ref(r, where) for r in play.get("roles") or [])
        tasks: list[Task] = []
        tasks += self.tasks(play.get("pre_tasks") or [], path.parent, None, where)
        flush_after = [len(tasks)]  # Ansible flushes handlers after pre_tasks, tasks, post_tasks
        done: set[str] = set()  # shared by all of the play's roles: each runs once per play
        for ref in roles:
            if _role_key(ref) not in done:
                done.add(_role_key(ref))
                tasks.extend(self.role_blocks(ref, where, done=done))
        tasks += self.tasks(play.get("tasks") or [], path.parent, None, where)
        flush_after.append(len(tasks))  # (roles and tasks are one section: no flush between)
        tasks += self.tasks(play.get("post_tasks") or [], path.parent, None, where)
        # the roles' handlers first, then the play's (Ansible's order of definition)
        handlers = [h for role in self._roles_of(tasks) for h in role.handlers]
        handlers += self.tasks(play.get("handlers") or [], path.parent, None, where, handler=True)
        _check_notify(tasks, handlers, where)
        hosts = play["hosts"]
        return Play(
            name=name,
            hosts=hosts if isinstance(hosts, str) else ":".join(hosts),  # a YStr keeps its position
            pos=play.pos,
            vars=play.get("vars") or {},
            vars_files=_as_tuple(play.get("vars_files")),  # YStr: a missing file has a position
            tasks=tuple(tasks),
            handlers=tuple(_dedupe_handlers(handlers)),
            gather_facts=bool(play.get("gather_facts", False)),
            force_handlers=bool(play.get("force_handlers", True)),
            environment=play.get("environment") or {},
            tags=frozenset(_as_strs(play.get("tags"))),
            roles=roles,
            flush_after=tuple(flush_after),
        )

    def _roles_of(self, tasks: Sequence[Task]) -> list[Role]:
        seen: dict[str, Role] = {}
        stack = list(tasks)
        while stack:
            t = stack.pop(0)
            if t.role and t.role.name not in seen:
                seen[t.role.name] = t.role.role
            stack.extend(t.block + t.rescue + t.always)
        return list(seen.values())


def plays_pos(data: Any, path: Path) -> Position:
    return position_of(data) or Position(str(path), 1, 1)


def _check_notify(tasks: Sequence[Task], handlers: Sequence[Task], where: str) -> None:
    """A ``notify`` that names no handler is a typo that would silently skip teardown."""
    known = {n for h in handlers for n in (h.name, h.display_name, *h.listen) if n}
    stack = list(tasks)
    while stack:
        task = stack.pop(0)
        stack.extend(task.block + task.rescue + task.always)
        for name in task.notify:
            if name not in known:
                guess = S.suggest(name, known)
                raw = task.raw.get("notify") if task.raw else None
                pos = raw.position_of(list(raw).index(name)) if isinstance(raw, YList) else position_of(raw)
                raise ValidationError(
                    f"notify: no handler named or listening to '{name}' in {where}",
                    pos=pos or task.pos,
                    context=task.where(),
                    hint=f"did you mean '{guess}'?" if guess else "known handlers: " + (", ".join(sorted(known)) or "none"),
                )


def _dedupe_handlers(handlers: list[Task]) -> list[Task]:
    seen: set[int] = set()
    out = []
    for h in handlers:
        if id(h) not in seen:
            seen.add(id(h))
            out.append(h)
    return out
