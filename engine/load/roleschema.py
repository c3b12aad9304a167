"""JSON Schema for the parameters of the roles on the roles path, from their
``argument_specs`` (the same :class:`~engine.model.ArgumentSpec` objects the run checks
role arguments with): ``roles: [{role: router, router_impl: ...}]`` completes and checks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.model import ArgumentSpec

#: argument_specs types (engine.executor.roleargs) as JSON Schema types.
JSON_TYPES = {"str": "string", "path": "string", "int": "integer", "float": "number", "bool": "boolean", "list": "array", "dict": "object"}


def argument(spec: ArgumentSpec, template: dict[str, Any]) -> dict[str, Any]:
    """One argument: its type (elements, choices), or a {{ expression }} (checked at run time)."""
    out: dict[str, Any] = {}
    if spec.type in JSON_TYPES:
        out["type"] = JSON_TYPES[spec.type]
    if spec.elements in JSON_TYPES and spec.type == "list":
        out["items"] = {"type": JSON_TYPES[str(spec.elements)]}
    if spec.choices:
        out["enum"] = list(spec.choices)
    typed: dict[str, Any] = {"anyOf": [out, template]} if out else {}
    if spec.description:
        typed["description"] = spec.description
    if spec.has_default:
        typed["default"] = spec.default
    return typed


def role_definitions(template: dict[str, Any], roles_path: Sequence[Path] | None = None) -> dict[str, dict[str, Any]]:
    """``role.NAME`` for every loadable role on the roles path (a broken role is left out:
    ``smlplay check`` reports it)."""
    from engine.errors import SmlplayError
    from engine.load.loader import Loader
    from engine.load.paths import default_roles_path

    path = list(roles_path) if roles_path is not None else default_roles_path()
    loader = Loader(path)
    names = sorted({d.name for base in path if base.is_dir() for d in base.iterdir() if (d / "tasks").is_dir() or (d / "meta").is_dir()})
    out = {}
    for name in names:
        try:
            role = loader.role(name, None, "smlplay schema")
        except SmlplayError:
            continue
        out[f"role.{name}"] = {
            "type": "object",
            "description": role.description,
            "properties": {n: argument(s, template) for n, s in role.argument_specs.items()},
        }
    return out


def role_entry(roles: Sequence[str], entry: dict[str, Any]) -> dict[str, Any]:
    """A ``roles:`` item: a name, or ``entry`` (the converted ``ROLE_ENTRY``: vars, when,
    tags and parameters named like variables) with ``role``/``name``, whose parameters
    follow NAME's argument specs when NAME is a known role."""
    names: dict[str, Any] = {"type": "string", **({"examples": list(roles)} if roles else {})}
    return {
        "anyOf": [
            names,
            {
                **entry,
                "properties": {"role": names, "name": names, **entry.get("properties", {})},
                "anyOf": [{"required": ["role"]}, {"required": ["name"]}],
                "allOf": [
                    {"if": {"properties": {"role": {"const": r}}, "required": ["role"]}, "then": {"$ref": f"#/definitions/role.{r}"}}
                    for r in roles
                ],
            },
        ]
    }
