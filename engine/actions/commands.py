"""``command`` (argv, no shell) and ``shell`` (a bash script)."""

from __future__ import annotations

import shlex
from typing import Any

import voluptuous as vol

from engine.actions.base import ActionContext, Result, action
from engine.load.types import AtLeastOne, NonEmptyStr

COMMON = {
    vol.Optional("chdir"): NonEmptyStr(),
    vol.Optional("creates"): NonEmptyStr(),
    vol.Optional("removes"): NonEmptyStr(),
    vol.Optional("stdin"): str,
    # false: run on the node itself, not in the container container-up set (srun hosts)
    vol.Optional("container"): bool,
}


def _argv(args: dict[str, Any]) -> list[str]:
    if args.get("argv"):
        return [str(a) for a in args["argv"]]
    return shlex.split(str(args.get("cmd", "")))


def _describe_command(args: dict[str, Any]) -> str:
    return shlex.join(_argv(args))


def _describe_shell(args: dict[str, Any]) -> str:
    return str(args["cmd"])


def _guard(ctx: ActionContext, args: dict[str, Any]) -> Result | None:
    """``creates``/``removes``: skip the command when its work is already done."""
    for key, want in (("creates", True), ("removes", False)):
        path = args.get(key)
        if path:
            exists = ctx.transport.run(["test", "-e", str(path)]).rc == 0
            if exists == want:
                return {"changed": False, "rc": 0, "stdout": "", "stderr": "", "msg": f"skipped, {path} {'exists' if want else 'does not exist'}"}
    return None


def _execute(ctx: ActionContext, cmd: str | list[str], args: dict[str, Any]) -> Result:
    guarded = _guard(ctx, args)
    if guarded is not None:
        return guarded
    stdin = args.get("stdin")
    result = ctx.host_transport(args.get("container", True)).run(
        cmd,
        env=dict(ctx.environment) or None,
        cwd=args.get("chdir"),
        timeout=ctx.timeout,
        stdin=stdin.encode() if stdin is not None else None,
    )
    out = result.to_dict()
    out["cmd"] = cmd
    out["changed"] = True
    if result.timed_out:
        out["failed"] = True
        out["msg"] = f"command timed out after {ctx.timeout}s"
    elif result.rc != 0:
        out["failed"] = True
        out["msg"] = f"non-zero return code {result.rc}"
    return out


@action(
    "command",
    {
        vol.Exclusive("cmd", "what"): NonEmptyStr(),
        vol.Exclusive("argv", "what"): vol.All([vol.Any(str, int, float)], vol.Length(min=1, msg="expected a non-empty list")),
        **COMMON,
    },
    free_form="cmd",
    describe=_describe_command,
    rules=(AtLeastOne("cmd", "argv", hint="command: PROGRAM ARGS, or argv: [PROGRAM, ARG...]"),),
)
def command(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Run a program with arguments, without a shell (no pipes, globs or variables).

    ``cmd: "ls -l /tmp"`` is split like a shell would split words; ``argv: [ls, -l]`` is
    used as is. ``chdir``, ``creates``, ``removes``, ``stdin`` as in Ansible."""
    argv = _argv(args)
    if not argv:
        return {"failed": True, "msg": "command: nothing to run (give cmd or argv)"}
    return _execute(ctx, argv, args)


@action(
    "shell",
    {vol.Required("cmd"): NonEmptyStr(), **COMMON},
    free_form="cmd",
    describe=_describe_shell,
)
def shell(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Run a bash script (pipes, redirections and variables work)."""
    return _execute(ctx, str(args["cmd"]), args)
