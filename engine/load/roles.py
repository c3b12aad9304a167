"""Roles: found on the search path, parsed once, expanded with their dependencies."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine import secrets
from engine.errors import Position, ValidationError
from engine.load import schema as S
from engine.load.fields import _as_strs, _as_tuple, _check_conditions
from engine.load.paths import YAML_SUFFIXES, default_roles_path, find_yaml
from engine.load.specs import ROLE_ENTRY
from engine.load.tasks import TaskLoader
from engine.load.yaml import YMap, load_file, position_of
from engine.model import ArgumentSpec, Role, RoleRef, RoleScope, Task


class RoleLoader(TaskLoader):
    def role_ref(self, data: Any, where: str) -> RoleRef:
        if isinstance(data, str):
            return RoleRef(name=str(data), params={}, pos=position_of(data))
        entry = S.require_mapping(data, what=f"a role entry in {where}", pos=None)
        name = entry.get("role", entry.get("name"))
        if not isinstance(name, str):
            raise ValidationError(f"a role entry in {where} needs 'role: NAME'", pos=entry.pos)
        S.validate(ROLE_ENTRY, entry, what=f"the entry of role '{name}'", context=where)
        _check_conditions(entry, where)
        params = YMap({k: v for k, v in entry.items() if k not in ("role", "name", "vars", "when", "tags")})
        params.pos, params.key_pos, params.value_pos = entry.pos, entry.key_pos, entry.value_pos
        if entry.get("vars"):
            params.update(entry["vars"])
            params.value_pos.update(getattr(entry["vars"], "value_pos", {}))
        return RoleRef(
            name=name,
            params=params,
            when=_as_tuple(entry.get("when")),
            tags=frozenset(_as_strs(entry.get("tags"))),
            pos=position_of(name) or entry.pos,
        )

    def role_blocks(
        self,
        ref: RoleRef,
        where: str,
        *,
        entry: str = "main",
        done: set[str] | None = None,
        chain: tuple[str, ...] = (),
    ) -> list[Task]:
        """A role's dependencies (each once, unless parameters differ), then the role.

        ``done`` holds the roles already expanded (see :func:`_role_key`); ``chain`` the
        roles being expanded, to report a dependency cycle instead of recursing through it.
        ``entry`` may be a YStr (``tasks_from``), whose position a missing file is reported at.
        """
        done = set() if done is None else done
        chain = (*chain, ref.name)
        role = self.role(ref.name, ref.pos, where)
        out: list[Task] = []
        for dep in role.dependencies:
            if dep.name in chain:
                raise ValidationError(
                    f"role dependency cycle: {' -> '.join([*chain, dep.name])}",
                    pos=dep.pos,
                    context=f"dependencies of role '{role.name}'",
                    hint="a role cannot depend on itself, directly or through other roles",
                )
            key = _role_key(dep)
            if key not in done:
                done.add(key)
                out.extend(self.role_blocks(dep, f"dependencies of role '{role.name}'", done=done, chain=chain))
        tasks = role.entry_points.get(entry) if entry != "main" else role.tasks
        if tasks is None:
            raise ValidationError(
                f"role '{role.name}' has no tasks file '{entry}'",
                pos=position_of(entry) or ref.pos,
                hint=f"expected {role.path / 'tasks' / (entry + '.yaml')}",
            )
        scope = RoleScope(role=role, params=ref.params, pos=ref.pos)
        out.append(
            Task(
                pos=ref.pos or Position(str(role.path), 1, 1),
                name=f"role {role.name}",
                is_block=True,
                block=tuple(_with_role(t, scope) for t in tasks),
                when=ref.when,
                tags=ref.tags,
                role=scope,
                action="role",
            )
        )
        return out

    def role(self, name: str, pos: Position | None, where: str) -> Role:
        if name in self._roles:
            return self._roles[name]
        if name in self._loading:
            cycle = " -> ".join([*self._loading, name])
            raise ValidationError(f"role dependency cycle: {cycle}", pos=pos)
        path = self._find_role(name)
        if path is None:
            known = sorted({d.name for base in self._roles_path or [] if base.is_dir() for d in base.iterdir() if d.is_dir()})
            guess = S.suggest(name, known)
            raise ValidationError(
                f"role '{name}' not found",
                pos=pos,
                context=where,
                hint=(f"did you mean '{guess}'? " if guess else "")
                + "searched: " + ", ".join(str(p) for p in self._roles_path or []),
            )
        self._loading.append(name)
        try:
            role = self._load_role(name, path)
        finally:
            self._loading.pop()
        self._roles[name] = role
        return role

    def _find_role(self, name: str) -> Path | None:
        for base in self._roles_path or default_roles_path():
            candidate = base / name
            if candidate.is_dir():
                return candidate
        return None

    def _load_role(self, name: str, path: Path) -> Role:
        where = f"role '{name}'"
        meta_file = find_yaml(path / "meta")
        meta = load_file(meta_file) if meta_file else None
        meta = meta or YMap()
        if meta_file:
            S.require_mapping(meta, what=f"{where} meta", pos=Position(str(meta_file), 1, 1))
            S.validate(S.ROLE_META, meta, what=f"{where} meta/main.yaml")
        deps = tuple(self.role_ref(d, f"{where} dependencies") for d in meta.get("dependencies") or [])
        specs, description = _argument_specs(meta, name)
        defaults = _vars_file(path / "defaults", where)
        role_vars = _vars_file(path / "vars", where)
        # Placeholder role so task scopes can point at it; tasks are attached below.
        shell = Role(name, path, (), (), defaults, role_vars, deps, specs, description)
        scope = RoleScope(shell, {})
        tasks_dir = path / "tasks"
        entry_points: dict[str, tuple[Task, ...]] = {}
        if tasks_dir.is_dir():
            for file in sorted(tasks_dir.iterdir()):
                if file.suffix in YAML_SUFFIXES:
                    entry_points[file.stem] = self.task_file(file, scope, where)
        handlers_file = find_yaml(path / "handlers")
        handlers = self.task_file(handlers_file, scope, where, handler=True) if handlers_file else ()
        role = Role(
            name, path, entry_points.get("main", ()), handlers, defaults, role_vars, deps, specs, description, entry_points
        )
        # Re-point every task at the finished role (frozen: rebuild instead of mutate).
        final_scope = RoleScope(role, {})
        entry_points = {k: tuple(_with_role(t, final_scope) for t in v) for k, v in entry_points.items()}
        return Role(
            name,
            path,
            entry_points.get("main", ()),
            tuple(_with_role(t, final_scope) for t in handlers),
            defaults,
            role_vars,
            deps,
            specs,
            description,
            entry_points,
        )


def _role_key(ref: RoleRef) -> str:
    """A role with the same parameters runs once per play (Ansible's rule)."""
    return f"{ref.name}:{sorted(map(str, ref.params.items()))}"


def _with_role(task: Task, scope: RoleScope) -> Task:
    from dataclasses import replace

    if task.role is not None and task.role.name != scope.name:
        return task  # an imported role inside this role keeps its own scope
    return replace(
        task,
        role=scope,
        block=tuple(_with_role(t, scope) for t in task.block),
        rescue=tuple(_with_role(t, scope) for t in task.rescue),
        always=tuple(_with_role(t, scope) for t in task.always),
    )


def _vars_file(directory: Path, where: str) -> Mapping[str, Any]:
    file = find_yaml(directory)
    if file is None:
        return {}
    data = load_file(file)
    if data is None:
        return {}
    S.require_mapping(data, what=f"{where} {directory.name}", pos=Position(str(file), 1, 1))
    S.validate(S.VarsMap, data, what=f"{where} {directory.name}/{file.name}")
    return data


def _argument_specs(meta: Mapping[str, Any], role: str) -> tuple[dict[str, ArgumentSpec], str]:
    entry = (meta.get("argument_specs") or {}).get("main") or {}
    description = entry.get("short_description") or entry.get("description") or meta.get("description") or ""
    if isinstance(description, list):
        description = " ".join(description)
    options = entry.get("options") or {}
    specs = {}
    for name, spec in options.items():
        desc = spec.get("description", "")
        specs[str(name)] = ArgumentSpec(
            name=str(name),
            type=str(spec.get("type", "str")),
            required=bool(spec.get("required", False)),
            default=spec.get("default"),
            has_default="default" in spec,
            choices=tuple(spec.get("choices") or ()),
            description=" ".join(desc) if isinstance(desc, list) else str(desc),
            elements=spec.get("elements"),
            pos=options.position_of(name, value=False) if isinstance(options, YMap) else None,
            secret=bool(spec.get("secret", False)),
        )
        if specs[str(name)].secret:
            secrets.mark_name(str(name))
    return specs, str(description)


