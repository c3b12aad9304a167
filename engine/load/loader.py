"""Build the frozen model from YAML files: playbooks, task files, roles.

Roles are found on a search path: ``<playbook dir>/roles``, ``./roles``, every entry of
``$SMLPLAY_ROLES_PATH``, then the built-in roles shipped with the package. The first match
wins, so a team can shadow a built-in role with its own copy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import voluptuous as vol

from engine.actions import REGISTRY
from engine.errors import Position, ValidationError
from engine.load import schema as S
from engine.load.yaml import YList, YMap, load_file, position_of
from engine.model import (
    BLOCK_KEYWORDS,
    CONTROL_ACTIONS,
    HANDLER_KEYWORDS,
    TASK_KEYWORDS,
    ArgumentSpec,
    LoopControl,
    Play,
    Playbook,
    Role,
    RoleRef,
    RoleScope,
    Task,
)
from engine.template import check_bare_expression

YAML_SUFFIXES = (".yaml", ".yml")


def builtin_roles_dir() -> Path | None:
    """Roles shipped with the package (a wheel), or the source tree's ``roles/``."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "builtin_roles", here.parent / "roles"):
        if candidate.is_dir():
            return candidate
    return None


def default_roles_path(playbook_dir: Path | None = None) -> list[Path]:
    paths: list[Path] = []
    if playbook_dir is not None:
        paths.append(playbook_dir / "roles")
    paths.append(Path.cwd() / "roles")
    paths.extend(Path(p) for p in os.environ.get("SMLPLAY_ROLES_PATH", "").split(os.pathsep) if p)
    builtin = builtin_roles_dir()
    if builtin is not None:
        paths.append(builtin)
    unique: list[Path] = []
    for p in paths:
        if p.resolve() not in [u.resolve() for u in unique]:
            unique.append(p)
    return unique


def find_yaml(base: Path, stem: str = "main") -> Path | None:
    for suffix in YAML_SUFFIXES:
        candidate = base / f"{stem}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


def _as_strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in _as_tuple(value))


class Loader:
    """Loads playbooks and roles; roles are parsed once and cached by name."""

    def __init__(self, roles_path: Sequence[Path] | None = None) -> None:
        self._roles_path = list(roles_path) if roles_path is not None else None
        self._roles: dict[str, Role] = {}
        self._loading: list[str] = []

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
        done: set[str] = set()  # shared by all of the play's roles: each runs once per play
        for ref in roles:
            if _role_key(ref) not in done:
                done.add(_role_key(ref))
                tasks.extend(self.role_blocks(ref, where, done=done))
        tasks += self.tasks(play.get("tasks") or [], path.parent, None, where)
        tasks += self.tasks(play.get("post_tasks") or [], path.parent, None, where)
        handlers = list(self.tasks(play.get("handlers") or [], path.parent, None, where, handler=True))
        for role in self._roles_of(tasks):
            handlers.extend(role.handlers)
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

    # -- roles ---------------------------------------------------------------------------
    def role_ref(self, data: Any, where: str) -> RoleRef:
        if isinstance(data, str):
            return RoleRef(name=str(data), params={}, pos=position_of(data))
        entry = S.require_mapping(data, what=f"a role entry in {where}", pos=None)
        name = entry.get("role", entry.get("name"))
        if not isinstance(name, str):
            raise ValidationError(f"a role entry in {where} needs 'role: NAME'", pos=entry.pos)
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

    # -- tasks ---------------------------------------------------------------------------
    def task_file(self, path: Path, scope: RoleScope | None, where: str, *, handler: bool = False) -> tuple[Task, ...]:
        data = load_file(path)
        if data is None:
            return ()
        items = S.require_list(data, what=f"task file {path.name}", pos=Position(str(path), 1, 1))
        return self.tasks(items, path.parent, scope, where, handler=handler)

    def tasks(
        self, items: Any, basedir: Path, scope: RoleScope | None, where: str, *, handler: bool = False
    ) -> tuple[Task, ...]:
        items = S.require_list(items, what="a task list", pos=position_of(items))
        out: list[Task] = []
        for item in items:
            task = self.task(item, basedir, scope, where, handler=handler)
            if task.action == "import_tasks":
                out.extend(self._import_tasks(task, basedir, scope, where))
            elif task.action == "import_role":
                out.extend(self._import_role(task, where))
            else:
                out.append(task)
        return tuple(out)

    def task(self, data: Any, basedir: Path, scope: RoleScope | None, where: str, *, handler: bool = False) -> Task:
        kind = "handler" if handler else "task"
        item = S.require_mapping(data, what=f"a {kind}", pos=position_of(data))
        label = item.get("name")
        ctx = f"{kind} '{label}'" if label else f"{kind} at line {item.pos.line}"
        if scope is not None:
            ctx += f" of role '{scope.name}'"
        keywords = HANDLER_KEYWORDS if handler else TASK_KEYWORDS
        if "block" in item:
            return self._block(item, basedir, scope, ctx, where)
        actions = [k for k in item if k in REGISTRY or k in CONTROL_ACTIONS]
        unknown = [k for k in item if k not in keywords and k not in REGISTRY and k not in CONTROL_ACTIONS]
        if unknown:
            key = unknown[0]
            guess = S.suggest(str(key), [*keywords, *REGISTRY, *CONTROL_ACTIONS])
            is_action_typo = guess in REGISTRY or guess in CONTROL_ACTIONS
            raise ValidationError(
                f"unknown {'action' if is_action_typo and not actions else 'keyword'} '{key}' in {kind}",
                pos=item.position_of(key, value=False),
                context=ctx,
                hint=f"did you mean '{guess}'?" if guess else None,
            )
        if not actions:
            raise ValidationError(
                f"{kind} has no action",
                pos=item.pos,
                context=ctx,
                hint="add one of: " + ", ".join(sorted(REGISTRY)),
            )
        if len(actions) > 1:
            raise ValidationError(
                f"{kind} has more than one action: {', '.join(actions)}",
                pos=item.position_of(actions[1], value=False),
                context=ctx,
            )
        for key in item:
            if key in S.TASK_KEYWORD_SCHEMAS:
                S.validate({vol.Required(str(key)): S.TASK_KEYWORD_SCHEMAS[key]}, YMapView(item, key), what=kind, context=ctx)
        _check_conditions(item, ctx)
        name = actions[0]
        args = item[name]
        if name in REGISTRY:
            act = REGISTRY[name]
            args = act.normalise(args)
            if isinstance(item.get("args"), dict):
                merged = YMap(args if isinstance(args, dict) else {})
                merged.update(item["args"])
                merged.pos = position_of(args) or item.pos
                merged.key_pos = {**getattr(args, "key_pos", {}), **item["args"].key_pos}
                merged.value_pos = {**getattr(args, "value_pos", {}), **item["args"].value_pos}
                args = merged
            if not isinstance(args, dict):
                raise ValidationError(
                    f"arguments of '{name}' must be a mapping", pos=position_of(args) or item.position_of(name), context=ctx
                )
            S.validate(_templatable_schema(act.schema), args, what=f"'{name}' arguments", context=ctx)
        else:
            args = _control_args(name, args, item, ctx)
        loop_control = item.get("loop_control") or {}
        return Task(
            pos=item.pos,
            name=str(label) if label is not None else None,
            action=name,
            args=args,
            when=_as_tuple(item.get("when")),
            loop=item.get("loop"),
            loop_control=LoopControl(
                loop_var=str(loop_control.get("loop_var", "item")),
                index_var=loop_control.get("index_var"),
                label=loop_control.get("label"),
                pause=float(loop_control.get("pause", 0)),
            ),
            register=item.get("register"),
            until=item.get("until"),
            retries=item.get("retries"),
            delay=item.get("delay", 5.0),
            changed_when=_as_tuple(item["changed_when"]) if "changed_when" in item else None,
            failed_when=_as_tuple(item["failed_when"]) if "failed_when" in item else None,
            ignore_errors=item.get("ignore_errors", False),
            notify=_as_strs(item.get("notify")),
            tags=frozenset(_as_strs(item.get("tags"))),
            vars=item.get("vars") or {},
            environment=item.get("environment") or {},
            timeout=item.get("timeout"),
            run_once=item.get("run_once", False),
            delegate_to=item.get("delegate_to"),
            no_log=bool(item.get("no_log", False)),
            check_mode=item.get("check_mode"),
            health=item.get("health"),
            listen=_as_strs(item.get("listen")),
            role=scope,
            raw=item,
        )

    def _block(self, item: YMap, basedir: Path, scope: RoleScope | None, ctx: str, where: str) -> Task:
        unknown = [k for k in item if k not in BLOCK_KEYWORDS]
        if unknown:
            key = unknown[0]
            guess = S.suggest(str(key), BLOCK_KEYWORDS)
            raise ValidationError(
                f"unknown keyword '{key}' in block",
                pos=item.position_of(key, value=False),
                context=ctx,
                hint=(f"did you mean '{guess}'? " if guess else "") + "a block holds tasks under 'block:', not an action",
            )
        for key in item:
            if key in S.TASK_KEYWORD_SCHEMAS:
                S.validate({vol.Required(str(key)): S.TASK_KEYWORD_SCHEMAS[key]}, YMapView(item, key), what="block", context=ctx)
        _check_conditions(item, ctx)
        sections = {}
        for section in ("block", "rescue", "always"):
            sections[section] = self.tasks(item.get(section) or YList(), basedir, scope, where) if item.get(section) is not None else ()
        return Task(
            pos=item.pos,
            name=item.get("name"),
            is_block=True,
            block=sections["block"],
            rescue=sections["rescue"],
            always=sections["always"],
            when=_as_tuple(item.get("when")),
            tags=frozenset(_as_strs(item.get("tags"))),
            vars=item.get("vars") or {},
            environment=item.get("environment") or {},
            ignore_errors=item.get("ignore_errors", False),
            no_log=bool(item.get("no_log", False)),
            run_once=item.get("run_once", False),
            delegate_to=item.get("delegate_to"),
            timeout=item.get("timeout"),
            role=scope,
            raw=item,
        )

    def resolve_task_file(self, name: str, basedir: Path, scope: RoleScope | None, *, pos: Position | None = None) -> Path:
        candidates = []
        if scope is not None:
            candidates.append(scope.role.path / "tasks" / name)
        candidates.append(basedir / name)
        for c in candidates:
            if c.exists():
                return c
            for suffix in YAML_SUFFIXES:
                if Path(str(c) + suffix).exists():
                    return Path(str(c) + suffix)
        raise ValidationError(f"task file '{name}' not found (looked in {', '.join(str(c.parent) for c in candidates)})", pos=pos)

    def _import_tasks(self, task: Task, basedir: Path, scope: RoleScope | None, where: str) -> list[Task]:
        file = task.args["file"]
        if S.is_template(file):
            raise ValidationError("import_tasks is static: its file cannot be a template (use include_tasks)", pos=position_of(file) or task.pos)
        path = self.resolve_task_file(str(file), basedir, scope, pos=position_of(file) or task.pos)
        tasks = self.task_file(path, scope, where)
        if not (task.when or task.tags or task.vars):
            return list(tasks)
        return [Task(pos=task.pos, name=task.name or f"import {file}", is_block=True, block=tasks, when=task.when, tags=task.tags, vars=task.vars, role=scope)]

    def _import_role(self, task: Task, where: str) -> list[Task]:
        ref = RoleRef(name=str(task.args["name"]), params=task.args.get("vars") or {}, when=task.when, tags=task.tags, pos=position_of(task.args["name"]) or task.pos)
        return self.role_blocks(ref, where, entry=task.args.get("tasks_from") or "main")


def _role_key(ref: RoleRef) -> str:
    """A role with the same parameters runs once per play (Ansible's rule)."""
    return f"{ref.name}:{sorted(map(str, ref.params.items()))}"


#: Keywords that take bare expressions, never ``{{ }}``.
CONDITION_KEYWORDS = ("when", "until", "changed_when", "failed_when")


def _check_conditions(item: YMap, ctx: str) -> None:
    """``{{ }}`` in a condition is bad input: report it now, not when (or if) it is evaluated."""
    for keyword in CONDITION_KEYWORDS:
        value = item.get(keyword)
        for i, expr in enumerate(value if isinstance(value, list) else [value]):
            if not isinstance(expr, str):
                continue
            pos = position_of(expr) or (value.position_of(i) if isinstance(value, YList) else item.position_of(keyword))
            try:
                check_bare_expression(expr, keyword=keyword, pos=pos, error=ValidationError)
            except ValidationError as exc:
                raise exc.with_context(ctx) from None


def plays_pos(data: Any, path: Path) -> Position:
    return position_of(data) or Position(str(path), 1, 1)


def YMapView(item: YMap, key: Any) -> YMap:
    """A one-key view of a task mapping, so a keyword's schema error keeps its position."""
    view = YMap({str(key): item[key]})
    view.pos = item.pos
    view.key_pos = {str(key): item.key_pos[key]}
    view.value_pos = {str(key): item.value_pos[key]}
    return view


def _templatable_schema(schema: Mapping[Any, Any]) -> dict[Any, Any]:
    """Wrap every value schema so Jinja strings pass at load time (checked after render)."""
    out: dict[Any, Any] = {}
    for key, value in schema.items():
        out[key] = S.templatable(_templatable_value(value))
    return out


def _templatable_value(value: Any) -> Any:
    # element schemas too: `ports: ["{{ base + 1 }}"]` is a list of ints once rendered
    if isinstance(value, dict):
        return _templatable_schema(value)
    if isinstance(value, list):
        return [S.templatable(_templatable_value(v)) for v in value]
    return value


def _control_args(name: str, args: Any, item: YMap, ctx: str) -> Any:
    pos = item.position_of(name)
    if name == "meta":
        if args not in ("flush_handlers", "end_play", "end_host", "noop", "clear_host_errors"):
            raise ValidationError(f"unknown meta action {args!r}", pos=pos, context=ctx, hint="one of: flush_handlers, end_play, end_host, noop")
        return {"action": str(args)}
    if name in ("include_tasks", "import_tasks"):
        if isinstance(args, str):
            return YMap({"file": args}) if not isinstance(args, YMap) else args
        return S.validate({vol.Required("file"): str, vol.Optional("apply"): dict}, args, what=name, context=ctx)
    # include_role / import_role
    if isinstance(args, str):
        out = YMap({"name": args})
        out.pos = pos
        out.key_pos, out.value_pos = {}, {"name": pos}
        return out
    return S.validate(
        {vol.Required("name"): str, vol.Optional("tasks_from"): str, vol.Optional("vars"): dict, vol.Optional("apply"): dict},
        args,
        what=name,
        context=ctx,
    )


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
        )
    return specs, str(description)


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
