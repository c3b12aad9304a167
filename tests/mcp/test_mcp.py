"""``smlplay mcp`` driven by the MCP SDK's own stdio client, against the local default
(inventory/local.yaml): list the tools, check, render, explain-var, then run a playbook
detached, follow it with status and logs, and tear it down with down.

The stdio client gives the child only HOME, PATH and the like: PYTHONPATH and
SMLPLAY_RUNS_DIR are passed explicitly. Starts a real server process (the demo playbook's
web server): run under ``flock /tmp/smlplay-servers.lock``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CI") != "true":  # under CI a missing SDK is a failure, not a skip
    pytest.importorskip("mcp")

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.ports import free_port

REPO = Path(__file__).resolve().parents[2]
TOOLS = {"check", "render", "preflight", "run", "status", "logs", "down", "explain-var"}


def text_of(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def payload(result: Any) -> Any:
    assert not result.is_error, text_of(result)
    if result.structured_content is not None:
        content = result.structured_content
        return content.get("result", content) if isinstance(content, dict) and set(content) == {"result"} else content
    return json.loads(text_of(result))


async def session_flow(runs_dir: Path) -> dict[str, Any]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "engine", "mcp"],
        env={"PYTHONPATH": str(REPO), "SMLPLAY_RUNS_DIR": str(runs_dir)},
        cwd=str(REPO),
    )
    seen: dict[str, Any] = {}
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = await session.list_tools()
        seen["tools"] = {t.name for t in tools.tools}
        seen["run_schema"] = next(t.input_schema for t in tools.tools if t.name == "run")

        seen["check"] = payload(await session.call_tool("check", {"playbook": "playbooks/llama70b.yaml"}))
        bad = await session.call_tool("check", {"playbook": "playbooks/llama70b.yaml", "extra_vars": ['{"gpus_per_node": "eight"}']})
        seen["check_bad"] = (bad.is_error, text_of(bad))
        seen["render"] = text_of(await session.call_tool("render", {"playbook": "playbooks/demo-service.yaml"}))
        seen["preflight"] = payload(await session.call_tool("preflight", {"playbook": "playbooks/llama70b.yaml"}))
        seen["explain"] = text_of(await session.call_tool("explain-var", {"playbook": "playbooks/llama70b.yaml", "name": "framework"}))

        port = free_port()
        started = payload(await session.call_tool("run", {"playbook": "playbooks/demo-service.yaml", "extra_vars": [f"port={port}"], "keep_running": True}))
        seen["run"], seen["port"] = started, port
        run_id = started["run_id"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = payload(await session.call_tool("status", {"run_id": run_id}))
            if state["status"] not in ("running", "starting", "created"):
                break
            await asyncio.sleep(0.5)
        seen["status"] = state
        seen["runs"] = payload(await session.call_tool("status", {}))
        seen["logs"] = text_of(await session.call_tool("logs", {"run_id": run_id}))
        seen["alive_before_down"] = port_open(port)
        seen["down"] = payload(await session.call_tool("down", {"run_id": run_id}))
        seen["alive_after_down"] = port_open(port)
        seen["status_after"] = payload(await session.call_tool("status", {"run_id": run_id}))
        missing = await session.call_tool("logs", {"run_id": "no-such-run"})
        seen["logs_missing"] = (missing.is_error, text_of(missing))
    return seen


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_mcp_tools_over_stdio(tmp_path: Path) -> None:
    seen = asyncio.run(asyncio.wait_for(session_flow(tmp_path / "runs"), timeout=240))

    assert seen["tools"] == TOOLS
    assert {"playbook", "keep_running"} <= set(seen["run_schema"]["properties"])
    assert seen["check"]["ok"] is True and seen["check"]["plays"] >= 4 and seen["check"]["steps"] > 10
    is_error, message = seen["check_bad"]
    assert is_error and "gpus_per_node" in message and "expected int" in message  # the CLI's own error text
    assert "start 'web'" in seen["render"] and "http.server" in seen["render"]
    assert seen["preflight"]["ok"] is True and {c["name"] for c in seen["preflight"]["checks"]} >= {"connect", "flags"}
    assert seen["explain"].startswith("framework = \"sim\"") and "inventory" in seen["explain"]

    run_id = seen["run"]["run_id"]
    assert Path(seen["run"]["run_dir"]).is_relative_to(tmp_path / "runs")
    assert seen["status"]["run"] == run_id and seen["status"]["status"] == "kept-running", seen["status"]
    assert [(p["process"], p["state"]) for p in seen["status"]["processes"]] == [("web", "running")], seen["status"]
    assert run_id in {r["run_id"] for r in seen["runs"]["runs"]}
    assert "==> " in seen["logs"] and "web" in seen["logs"]
    assert seen["alive_before_down"] is True
    assert seen["down"]["ok"] is True and seen["alive_after_down"] is False
    assert seen["status_after"]["status"] != "kept-running"
    assert seen["logs_missing"][0] is True and "no-such-run" in seen["logs_missing"][1]
