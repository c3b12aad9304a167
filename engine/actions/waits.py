"""``wait_for``, ``http`` and ``pause``: the actions that wait on something."""

from __future__ import annotations

import json
import re
import shlex
import time
from typing import Any

import voluptuous as vol

from engine.actions.base import ActionContext, Result, action
from engine.load.types import AtLeastOne, Duration, IntRange, NonEmptyStr, OneOf, Port, Regex
from engine.units import parse_duration


def _interrupted(ctx: ActionContext, sleep: float) -> str | None:
    """Sleep, but wake at once when the run is cancelled or a critical process died."""
    death = ctx.processes.check() if ctx.processes.failure.is_set() else None
    if death is not None:
        return death.message()
    if ctx.cancel_event is not None:
        if ctx.cancel_event.wait(sleep):
            return "interrupted"
    else:
        time.sleep(sleep)
    return None


def _describe_wait(args: dict[str, Any]) -> str:
    what = f"port {args.get('host', '127.0.0.1')}:{args['port']}" if "port" in args else f"file {args.get('path')}"
    if args.get("search_regex"):
        what += f" =~ /{args['search_regex']}/"
    return f"wait for {what} to be {args.get('state', 'started')} (timeout {args.get('timeout', 300)})"


@action(
    "wait_for",
    {
        vol.Optional("host"): NonEmptyStr(),
        vol.Optional("port"): Port(),
        vol.Optional("path"): NonEmptyStr(),
        vol.Optional("search_regex"): Regex(),
        vol.Optional("state"): OneOf(["started", "stopped", "present", "absent"]),
        vol.Optional("timeout"): Duration(),
        vol.Optional("delay"): Duration(),
        vol.Optional("sleep"): Duration(),
    },
    read_only=True,
    describe=_describe_wait,
    rules=(AtLeastOne("port", "path", hint="port: to wait for a TCP port, path: for a file"),),
)
def wait_for(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Wait for a TCP port to open (``started``) or close (``stopped``), or a file to exist
    (optionally containing ``search_regex``) or go away. Returns ``elapsed``."""
    if "port" not in args and "path" not in args:
        return {"failed": True, "msg": "wait_for needs port or path"}
    timeout = parse_duration(args.get("timeout", 300), what="timeout")
    sleep = parse_duration(args.get("sleep", 1), what="sleep")
    state = args.get("state", "started")
    start = time.monotonic()
    if args.get("delay"):
        time.sleep(parse_duration(args["delay"], what="delay"))
    while True:
        if "port" in args:
            try:
                ctx.transport.connect_tcp(args.get("host", "127.0.0.1"), int(args["port"]), 2.0).close()
                up = True
            except OSError:
                up = False
            except Exception:
                up = False
            done = up if state in ("started", "present") else not up
        else:
            path = str(args["path"])
            if args.get("search_regex"):
                text = ctx.transport.tail(path, 5000)
                present = bool(re.search(args["search_regex"], text, re.MULTILINE))
            else:
                present = ctx.transport.run(f"test -e {shlex.quote(path)}").rc == 0
            done = present if state in ("started", "present") else not present
        elapsed = time.monotonic() - start
        if done:
            return {"changed": False, "elapsed": round(elapsed, 3), "state": state}
        if elapsed >= timeout:
            return {"failed": True, "elapsed": round(elapsed, 3), "msg": f"timeout after {timeout:.0f}s: {_describe_wait(args)}"}
        why = _interrupted(ctx, min(sleep, timeout - elapsed))
        if why:
            return {"failed": True, "msg": why, "elapsed": round(elapsed, 3)}


def _describe_http(args: dict[str, Any]) -> str:
    body = ""
    if args.get("body") is not None:
        body = " " + (json.dumps(args["body"], sort_keys=True) if not isinstance(args["body"], str) else args["body"])
    return f"{args.get('method', 'GET')} {args['url']}{body} -> {args.get('status_code', 200)}"


@action(
    "http",
    {
        vol.Required("url"): NonEmptyStr(),
        vol.Optional("method"): OneOf(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"]),
        vol.Optional("body"): object,
        vol.Optional("body_format"): OneOf(["json", "raw"]),
        vol.Optional("headers"): {str: str},
        vol.Optional("status_code"): vol.Any(IntRange(100, 599, "an HTTP status"), [IntRange(100, 599, "an HTTP status")]),
        vol.Optional("timeout"): Duration(),
        vol.Optional("return_content"): bool,
    },
    read_only=True,
    describe=_describe_http,
)
def http(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """An HTTP request from the host (like Ansible's ``uri``). Returns ``status``, ``json``
    (when the body is JSON) and ``content`` (with ``return_content``); fails when the status
    is not in ``status_code`` (default 200)."""
    body = args.get("body")
    headers = dict(args.get("headers") or {})
    data: bytes | None = None
    if body is not None:
        if args.get("body_format", "json" if not isinstance(body, str) else "raw") == "json":
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            data = str(body).encode()
    timeout = parse_duration(args.get("timeout", 30), what="timeout")
    wanted = args.get("status_code", 200)
    wanted_list = wanted if isinstance(wanted, list) else [wanted]
    start = time.monotonic()
    from engine import httpclient  # http.client and email: only when a task asks

    try:
        resp = httpclient.request(ctx.transport, args["url"], method=args.get("method", "POST" if data else "GET"), body=data, headers=headers, timeout=timeout)
    except Exception as exc:
        return {"failed": True, "status": -1, "msg": f"request to {args['url']} failed: {type(exc).__name__}: {exc}", "url": args["url"]}
    result: Result = {"changed": False, "status": resp.status, "url": args["url"], "elapsed": round(time.monotonic() - start, 3)}
    if "json" in resp.headers.get("content-type", "") or resp.body[:1] in (b"{", b"["):
        try:
            result["json"] = resp.json()
        except ValueError:
            pass
    if args.get("return_content"):
        result["content"] = resp.text
    if resp.status not in wanted_list:
        result["failed"] = True
        result["msg"] = f"status {resp.status} from {args['url']}, expected {wanted}: {resp.text[:500]}"
    return result


@action(
    "pause",
    {vol.Optional("seconds"): Duration(), vol.Optional("minutes"): vol.All(vol.Any(int, float), vol.Range(min=0)), vol.Optional("prompt"): str},
    read_only=True,
    describe=lambda a: f"pause {a.get('seconds', 0)}s" if "seconds" in a else f"pause {a.get('minutes', 0)}m",
)
def pause(ctx: ActionContext, args: dict[str, Any]) -> Result:
    """Wait a fixed time (``seconds`` or ``minutes``); a critical process death or Ctrl-C
    ends the wait early."""
    seconds = parse_duration(args.get("seconds", 0), what="seconds") + 60 * float(args.get("minutes", 0))
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        why = _interrupted(ctx, min(left, 0.5))
        if why:
            return {"failed": True, "msg": why}
    return {"changed": False, "elapsed": round(seconds, 3)}
