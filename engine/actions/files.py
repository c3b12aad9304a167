"""``template``, ``copy`` and ``file``: put content on a host."""

from __future__ import annotations

import hashlib
import shlex
from typing import Any

import voluptuous as vol

from engine.actions.base import ActionContext, Result, action
from engine.load.types import AtLeastOne, NonEmptyStr, OneOf

Mode = vol.Any(
    vol.All(int, vol.Range(min=0, max=0o7777)),
    vol.Match(r"^(0o?)?[0-7]{3,4}$"),  # 0644, 644, 0o644 (int(x, 8) reads each)
    msg="expected a file mode: an octal string like '0644' or a number 0-4095 (0o7777)",
)


def _mode(value: Any) -> int | None:
    if value is None:
        return None
    return value if isinstance(value, int) else int(str(value), 8)


def _put(ctx: ActionContext, data: bytes, dest: str, mode: Any) -> Result:
    checksum = hashlib.sha1(data).hexdigest()
    try:
        old = ctx.transport.read(dest)
        changed = hashlib.sha1(old).hexdigest() != checksum
    except (OSError, Exception):
        changed = True
    if changed:
        ctx.transport.put(data, dest, mode=_mode(mode))
    elif mode is not None:
        ctx.transport.run(["chmod", f"{_mode(mode):o}", dest])
    return {"changed": changed, "dest": dest, "checksum": checksum, "size": len(data)}


def _describe_template(args: dict[str, Any]) -> str:
    return f"render {args['src']} -> {args['dest']}"


@action(
    "template",
    {vol.Required("src"): NonEmptyStr(), vol.Required("dest"): NonEmptyStr(), vol.Optional("mode"): Mode},
    describe=_describe_template,
)
def template(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Render a Jinja2 file from the role's ``templates/`` (or the playbook's) to ``dest``."""
    path = ctx.find_file("templates", args["src"])
    text = ctx.templar.render_file(path, ctx.scope)
    result = _put(ctx, text.encode("utf-8"), args["dest"], args.get("mode"))
    result["src"] = str(path)
    return result


def _describe_copy(args: dict[str, Any]) -> str:
    if "content" in args:
        return f"write {len(str(args['content']))} bytes -> {args['dest']}"
    return f"copy {args['src']} -> {args['dest']}"


@action(
    "copy",
    {
        vol.Exclusive("src", "what"): NonEmptyStr(),
        vol.Exclusive("content", "what"): vol.Any(str, int, float, dict, list),
        vol.Required("dest"): NonEmptyStr(),
        vol.Optional("mode"): Mode,
    },
    describe=_describe_copy,
    rules=(AtLeastOne("src", "content", hint="src: a file from files/, or content: the text to write"),),
)
def copy(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Copy a file from the role's ``files/`` (or the playbook's), or write ``content``."""
    if "content" in args:
        content = args["content"]
        if not isinstance(content, str):
            import json

            content = json.dumps(content, indent=2)
        data = str(content).encode("utf-8")
    elif "src" in args:
        data = ctx.find_file("files", args["src"]).read_bytes()
    else:
        return {"failed": True, "msg": "copy needs src or content"}
    return _put(ctx, data, args["dest"], args.get("mode"))


def _describe_file(args: dict[str, Any]) -> str:
    return f"{args.get('state', 'directory')} {args['path']}"


@action(
    "file",
    {
        vol.Required("path"): NonEmptyStr(),
        vol.Optional("state"): OneOf(["directory", "absent", "touch"]),
        vol.Optional("mode"): Mode,
    },
    describe=_describe_file,
)
def file(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Make a directory (``state: directory``, the default), remove a path (``absent``), or
    create an empty file (``touch``)."""
    path, state = str(args["path"]), args.get("state", "directory")
    q = shlex.quote(path)
    mode = _mode(args.get("mode"))
    if state == "absent":
        script = f"if [ -e {q} ] || [ -L {q} ]; then rm -rf -- {q}; echo changed; fi"
    elif state == "directory":
        script = f"if [ ! -d {q} ]; then mkdir -p -- {q}; echo changed; fi"
    else:
        script = f"if [ ! -e {q} ]; then touch -- {q}; echo changed; fi"
    if mode is not None and state != "absent":
        script += f"; chmod {mode:o} -- {q}"
    result = ctx.transport.run(script, timeout=ctx.timeout)
    if result.rc != 0:
        return {"failed": True, "msg": result.stderr.strip() or f"file: rc {result.rc}", "rc": result.rc, "path": path}
    return {"changed": "changed" in result.stdout, "path": path, "state": state}
