"""``set_fact``, ``debug``, ``assert`` and ``fail``: actions that run in the engine."""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from engine.actions.base import ActionContext, Result, action
from engine.errors import TemplateError
from engine.load.schema import VarsMap
from engine.load.types import NonEmptyStr, StrOrList


@action("set_fact", VarsMap.schema, read_only=True, describe=lambda a: ", ".join(f"{k}={v!r}" for k, v in a.items()))
def set_fact(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Set host variables (precedence: host facts) for the rest of the run."""
    ctx.facts.update(args)
    return {"changed": False, "ansible_facts": dict(args)}


@action(
    "debug",
    {vol.Exclusive("msg", "what"): object, vol.Exclusive("var", "what"): NonEmptyStr()},
    read_only=True,
    describe=lambda a: str(a.get("msg", a.get("var", ""))),
)
def debug(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Print a message (``msg``) or a variable's value (``var``)."""
    if "var" in args:
        name = args["var"]
        try:
            value = ctx.templar.evaluate(name, ctx.scope)
        except TemplateError as exc:
            value = f"VARIABLE IS NOT DEFINED: {exc.message}"
        return {"changed": False, name: value, "msg": value}
    return {"changed": False, "msg": args.get("msg", "Hello world!")}


@action(
    "assert",
    {
        vol.Required("that"): StrOrList("a condition or a non-empty list of conditions"),
        vol.Optional("fail_msg"): str,
        vol.Optional("msg"): str,
        vol.Optional("success_msg"): str,
        vol.Optional("quiet"): bool,
    },
    read_only=True,
    plans=True,  # checks whose inputs are known at render time fail the dry-run (exit 2)
    describe=lambda a: " and ".join(a["that"] if isinstance(a["that"], list) else [a["that"]]),
)
def assert_(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Check that every expression in ``that`` is true (bare expressions, like ``when``)."""
    checks = args["that"] if isinstance(args["that"], list) else [args["that"]]
    for expr in checks:
        if not ctx.templar.condition(expr, ctx.scope, keyword="assert.that"):
            return {
                "failed": True,
                "assertion": expr,
                "msg": args.get("fail_msg") or args.get("msg") or f"Assertion failed: {expr}",
            }
    return {"changed": False, "msg": args.get("success_msg", "All assertions passed")}


@action("fail", {vol.Optional("msg"): object}, read_only=True, plans=True, describe=lambda a: f"fail: {a.get('msg', 'Failed as requested')}")
def fail(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Fail the task with ``msg``."""
    return {"failed": True, "msg": args.get("msg", "Failed as requested from task")}
