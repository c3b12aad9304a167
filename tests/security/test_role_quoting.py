"""Every role quotes what it interpolates into a command line.

The shipped playbooks are rendered (a dry-run, nothing runs) with hostile values in the
role inputs users set -- model name and path, interpreters, extra flags, environment,
benchmark arguments -- and every command the plan holds (``shell``/``command`` lines,
``command`` argv, ``process`` cmd, and each launch script a ``template`` writes) is checked:

* split as the shell would (``shlex``), each value is still one piece, whole;
* every ``$(``, backtick and ``;`` of a value sits inside single quotes, where the shell
  expands nothing (a value in double quotes would pass the first check and still run).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PAYLOAD = "it's \"q\" $(touch /tmp/smlpwn) ; `id` & | > <"


def hostile(n: int) -> str:
    return f"HX{n}X {PAYLOAD}"


def hostile_path(n: int) -> str:
    return f"/opt/HX{n}X dir/$(touch /tmp/smlpwn)/it's/python"


EXTRA = {
    "model": {"name": hostile(1), "path": hostile_path(2)},
    "sglang_args": {"mem-fraction-static": 0.85, "chat-template": hostile(3)},
    "worker_env": {"HOSTILE_ENV": hostile(4)},
    "sim_python": hostile_path(5),
    "sglang_python": hostile_path(6),
    "router_python": hostile_path(7),
    "profile_python": hostile_path(8),
    "benchmark": {
        "tool": "bench_serving", "concurrencies": [1], "python": hostile_path(9),
        "dataset_path": hostile_path(10), "extra_args": [hostile(11)], "tokenizer": hostile_path(12),
    },
    "router_args": {"log-dir": hostile_path(13)},
    "vllm_args": {"chat-template": hostile(14)},
}
VALUES = {f"HX{n}X": v for n, v in enumerate(
    [None, hostile(1), hostile_path(2), hostile(3), hostile(4), hostile_path(5), hostile_path(6),
     hostile_path(7), hostile_path(8), hostile_path(9), hostile_path(10), hostile(11),
     hostile_path(12), hostile_path(13), hostile(14)]) if v}
#: the run directory (SMLPLAY_RUNS_DIR): scripts, logs and results paths derive from it
#: (no whitespace: opentela-register refuses a script path with whitespace, by an assert)
RUNS_DIR = "/tmp/HX15X/$(touch${IFS}/tmp/smlpwn)/it's;`id`"
VALUES["HX15X"] = RUNS_DIR

PLAYBOOKS = ["llama70b.yaml", "llama70b-aggregated.yaml", "deepseek-r1-pd.yaml", "demo-service.yaml"]


def _plan(playbook: str, *extra: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "engine", "run", f"playbooks/{playbook}", "--dry-run", "--format", "json"]
    for key, value in EXTRA.items():
        argv += ["-e", json.dumps({key: value})]
    env = {**os.environ, "SMLPLAY_RUNS_DIR": RUNS_DIR}
    proc = subprocess.run([*argv, *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _commands(plan: dict[str, Any]) -> list[tuple[str, str | list[str]]]:
    """(where, command text or argv) of every step that starts something."""
    out: list[tuple[str, str | list[str]]] = []
    for play in plan["plays"]:
        for step in play["steps"]:
            where = f"{step['task']} on {step['host']} ({step['pos']})"
            args = step.get("args") or {}
            if step["action"] in ("shell", "command", "process") and isinstance(args, dict):
                if isinstance(args.get("cmd"), str):
                    out.append((where, args["cmd"]))
                if isinstance(args.get("argv"), list):
                    out.append((where, [str(a) for a in args["argv"]]))
            if step["action"] == "template" and str(args.get("dest", "")).endswith(".sh"):
                body = step["detail"].split("\n", 1)[1].split("---\n", 1)[1]
                out.append((f"{where} -> {args['dest']}", body))
    return out


def _quote_states(text: str) -> list[str]:
    """The shell's quoting state at each character: '' (none), "'", '"' or '#' (comment)."""
    states, state, i = [""] * len(text), "", 0
    while i < len(text):
        c = text[i]
        states[i] = state
        if state == "'":
            state = "" if c == "'" else state
        elif state == '"':
            if c == "\\":
                i += 1
            elif c == '"':
                state = ""
        elif state == "#":
            state = "" if c == "\n" else state
        elif c == "\\":
            i += 1
            if i < len(text):
                states[i] = "\\"
        elif c in "'\"":
            state = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t\n;&|"):
            state = "#"
        i += 1
    return states


def _problems(where: str, command: str | list[str]) -> list[str]:
    problems = []
    if isinstance(command, list):
        for marker, value in VALUES.items():
            for arg in command:
                if marker in arg and value not in arg:
                    problems.append(f"{where}: argv element {arg!r} holds part of {marker}")
        return problems
    markers = [m for m in VALUES if m in command]
    if not markers:
        return problems
    try:
        tokens = shlex.split(command, comments=True)
    except ValueError as exc:  # an unbalanced quote: a value broke out of its quotes
        return [f"{where}: {exc} in {command[:300]!r}"]
    for marker in markers:
        if not any(VALUES[marker] in t for t in tokens if marker in t) and any(marker in t for t in tokens):
            problems.append(f"{where}: {marker}'s value is split into several shell words")
    states = _quote_states(command)
    for danger in ("$(touch", "`id`", " ; "):
        start = command.find(danger)
        while start >= 0:
            if any(states[start + k] not in ("'", "#") for k in range(len(danger)) if danger[k] in "$`;"):
                line = command[:start].count("\n") + 1
                problems.append(f"{where}: line {line}: {danger!r} of a value is not single-quoted: {command.splitlines()[line - 1][:160]!r}")
            start = command.find(danger, start + 1)
    return problems


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_role_commands_quote_hostile_values(playbook: str) -> None:
    plan = _plan(playbook)
    commands = _commands(plan)
    assert commands
    used = {m for _w, c in commands for m in VALUES if m in (c if isinstance(c, str) else " ".join(c))}
    problems = [p for where, command in commands for p in _problems(where, command)]
    assert not problems, "\n".join(problems)
    if playbook == "llama70b.yaml":  # the planted values really reached the commands
        assert {"HX1X", "HX2X", "HX3X", "HX4X", "HX5X", "HX7X", "HX9X", "HX11X", "HX13X", "HX15X"} <= used, sorted(used)


def test_the_checker_catches_an_unquoted_value() -> None:
    """The checks above can fail: an unquoted or double-quoted value is reported."""
    value = VALUES["HX1X"]
    assert _problems("t", f"echo {value}")
    assert _problems("t", f'echo "{value}"')
    assert _problems("t", f"# note\necho x {value}")
    assert not _problems("t", f"echo {shlex.quote(value)}")
    assert not _problems("t", f"echo --flag={shlex.quote(value)}")
    assert _problems("t", ["python3", "-c", value.split(" ")[0]])


def test_the_custom_benchmark_command_gets_its_placeholders_quoted() -> None:
    custom = {**EXTRA["benchmark"], "tool": "custom", "command": "my-client --model {model} --out {output_file} --tok {tokenizer}"}
    plan = _plan("llama70b.yaml", "-e", json.dumps({"benchmark": custom}))
    # the role runs it as `bash -c COMMAND`: the inner command line is what bash parses
    commands = [(w, shlex.split(c)[2]) for w, c in _commands(plan) if isinstance(c, str) and c.startswith("bash -c") and "my-client" in c]
    assert commands
    assert all("HX1X" in c and "HX12X" in c and "HX15X" in c for _w, c in commands)
    problems = [p for where, command in commands for p in _problems(where, command)]
    assert not problems, "\n".join(problems)
