"""Static imports (``import_tasks``, ``import_role``) and task-file resolution for includes."""

from __future__ import annotations

from pathlib import Path

from engine.errors import Position, ValidationError
from engine.load import schema as S
from engine.load.paths import YAML_SUFFIXES
from engine.load.roles import RoleLoader
from engine.load.yaml import position_of
from engine.model import RoleRef, RoleScope, Task


class IncludeLoader(RoleLoader):
    def resolve_task_file(self, name: str, basedir: Path, scope: RoleScope | None, *, pos: Position | None = None, including: Path | None = None) -> Path:
        """Ansible's search: the including file's directory (an include), then the role's
        ``tasks/``, then ``basedir`` (the playbook's directory)."""
        candidates = [including / name] if including is not None else []
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


