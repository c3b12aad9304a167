"""A role's ``argument_specs`` checked against the values its tasks will see."""

from __future__ import annotations

from typing import Any

from engine.errors import TemplateError, ValidationError
from engine.model import Task
from engine.template import Unknown
from engine.vars import VarScope


def check_role_arguments(block: Task, scope: VarScope) -> None:
    """Validate a role's ``argument_specs`` against the values it will see."""
    assert block.role is not None
    role = block.role.role
    params = block.role.params
    for name, spec in role.argument_specs.items():
        where = f"role '{role.name}', argument '{name}'"
        pos = getattr(params, "value_pos", {}).get(name) or block.role.pos or spec.pos
        if name not in scope:
            if spec.required:
                raise ValidationError(f"missing required argument '{name}' of role '{role.name}'", pos=block.role.pos or block.pos, hint=spec.description or None)
            continue
        try:
            value = scope[name]
        except TemplateError as exc:
            raise exc.with_context(where) from None
        if isinstance(value, Unknown) or (value is None and not spec.required):
            continue  # null = not given (as in Ansible), for optional arguments
        problem = _type_problem(value, spec.type)
        if problem is None and spec.elements and isinstance(value, list):
            for i, element in enumerate(value):
                if (problem := _type_problem(element, spec.elements)) is not None:
                    problem = f"element {i}: {problem}"
                    break
        if problem is None and spec.choices and value not in spec.choices:
            problem = f"{value!r} is not one of {', '.join(map(repr, spec.choices))}"
        if problem is not None:
            raise ValidationError(f"invalid argument '{name}' of role '{role.name}': {problem}", pos=pos, hint=spec.description or None)


_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "path": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list, tuple),
    "dict": (dict,),
}


def _type_problem(value: Any, type_name: str) -> str | None:
    if type_name == "raw":
        return None
    wanted = _TYPES.get(type_name, (object,))
    if type_name in ("int", "float") and isinstance(value, bool):
        return f"expected {type_name}, got boolean {value!r}"
    if not isinstance(value, wanted):
        return f"expected {type_name}, got {type(value).__name__} {value!r}"
    return None

