"""Reading a dry-run plan (``--format json``) and checking what it would run.

Plan shape: ``{"plays": [{"name", "hosts", "steps": [{"action", "host", "task", "args",
"detail", "via", "item"?, ...}]}]}``; a template step's detail is ``render SRC -> DEST``
followed by ``--- SRC ---`` and the rendered file.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: what a dry-run prints for values only the run knows: <run-id>, <job id>, <node 1>,
#: <address of node 1>, <unknown: ...>, <registered: ...>
PLACEHOLDER = re.compile(r"<(?:run-id|job id|node \d+|address of node \d+|unknown[^<>\n]*|registered[^<>\n]*)>")


# ----------------------------------------------------------------------------------------
# the plan
# ----------------------------------------------------------------------------------------
def steps(plan: Mapping[str, Any], play: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    for p in plan["plays"]:
        if play is None or p["name"] == play:
            for step in p["steps"]:
                yield p["name"], step


def template_text(step: Mapping[str, Any]) -> tuple[str, str]:
    """(dest, rendered content) of a template step."""
    head, _, rest = str(step.get("detail", "")).partition("\n")
    dest = head.split(" -> ", 1)[1] if " -> " in head else str(step.get("args", {}).get("dest", ""))
    if rest.startswith("--- "):
        rest = rest.split("\n", 1)[1] if "\n" in rest else ""
    return dest, rest + "\n"


#: what a dry-run shows instead of a template that needs a value only the run knows
DEFERRED = re.compile(r"^\(rendered at run time: it depends on (.*)\)$")


def deferred_templates(plan: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(template source, the unknown it waits for) of every template the dry-run could not render."""
    found = []
    for _, step in steps(plan):
        if step["action"] == "template":
            m = DEFERRED.match(template_text(step)[1].strip())
            if m:
                found.append((str(step["args"].get("src")), m.group(1)))
    return found


@dataclass(frozen=True)
class Script:
    label: str
    text: str


def shell_scripts(plan: Mapping[str, Any]) -> list[Script]:
    """Every piece of shell the plan would run: staged .sh templates, process commands,
    command/shell steps."""
    found: list[Script] = []
    for play, step in steps(plan):
        action, host, task = step["action"], step.get("host", "?"), step.get("task", "?")
        label = f"{play} / {task} on {host}"
        if action == "template":
            dest, text = template_text(step)
            if dest.endswith(".sh") and not DEFERRED.match(text.strip()):
                found.append(Script(f"{label}: {dest}", text))
        elif action == "process":
            found.append(Script(f"{label}: process {step['args'].get('name')}", str(step["args"]["cmd"]) + "\n"))
        elif action in ("command", "shell"):
            found.append(Script(f"{label}: {action}", str(step.get("detail", "")) + "\n"))
    return found


def unquoted_placeholders(text: str) -> list[str]:
    """Dry-run placeholders outside quotes (outside comments): in a real run such a value is
    a word, but written bare it is a redirection (``<address of node 1>``) or splits."""
    quoted = _quote_map(text)
    bad = []
    for m in PLACEHOLDER.finditer(text):
        if quoted[m.start()] == "bare":
            line = text.count("\n", 0, m.start()) + 1
            bad.append(f"line {line}: {m.group(0)} is not quoted: {text.splitlines()[line - 1].strip()}")
    return bad


def _quote_map(text: str) -> list[str]:
    """Per character: 'bare', 'quoted' or 'comment' (a small model of bash's quoting)."""
    state, out, i, n = "bare", [], 0, len(text)
    while i < n:
        c = text[i]
        if state == "bare":
            if c == "\\" and i + 1 < n:
                out += ["quoted", "quoted"]
                i += 2
                continue
            if c in "'\"":
                state = "single" if c == "'" else "double"
                out.append("quoted")
            elif c == "#" and (i == 0 or text[i - 1] in " \t\n;|&("):
                state = "comment"
                out.append("comment")
            else:
                out.append("bare")
        elif state == "single":
            out.append("quoted")
            if c == "'":
                state = "bare"
        elif state == "double":
            if c == "\\" and i + 1 < n:
                out += ["quoted", "quoted"]
                i += 2
                continue
            out.append("quoted")
            if c == '"':
                state = "bare"
        else:  # comment
            out.append("comment")
            if c == "\n":
                state = "bare"
        i += 1
    return out


def bash_syntax_errors(scripts: list[Script]) -> list[str]:
    errors = []
    for s in scripts:
        proc = subprocess.run(["bash", "-n"], input=s.text, capture_output=True, text=True)
        if proc.returncode != 0:
            errors.append(f"{s.label}: bash -n: {proc.stderr.strip()}\n{_numbered(s.text)}")
    return errors


def shellcheck_errors(scripts: list[Script]) -> list[str]:
    """``shellcheck -s bash`` over every script at once (one process per plan)."""
    exe = shutil.which("shellcheck")
    assert exe, "shellcheck is not installed (apt-get install shellcheck)"
    with tempfile.TemporaryDirectory(prefix="matrix-sc-") as tmp:
        paths = []
        for index, s in enumerate(scripts):
            path = Path(tmp) / f"{index:03d}.sh"
            path.write_text(s.text)
            paths.append(path)
        proc = subprocess.run([exe, "-s", "bash", "-f", "gcc", *map(str, paths)], capture_output=True, text=True)
    if proc.returncode == 0:
        return []
    errors = []
    for line in proc.stdout.splitlines():
        m = re.match(r".*/(\d{3})\.sh:(\d+):(\d+): (.*)", line)
        if m:
            s = scripts[int(m.group(1))]
            source = s.text.splitlines()[int(m.group(2)) - 1] if int(m.group(2)) <= len(s.text.splitlines()) else ""
            errors.append(f"{s.label}: line {m.group(2)}: {m.group(4)}\n    {source.strip()}")
    return errors or [proc.stdout + proc.stderr]


def _numbered(text: str) -> str:
    return "\n".join(f"{i:4d} | {line}" for i, line in enumerate(text.splitlines(), 1))


# ----------------------------------------------------------------------------------------
# SGLang's flags
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FlagSpec:
    canonical: str  # the first option string of its add_argument call (aliases share it)
    nargs: int | str  # 0, 1, "+", "*" or "?"
    deprecated: bool = False


def sglang_flags_from_source(path: Path) -> dict[str, FlagSpec]:
    """Every ``--flag`` of ``parser.add_argument(...)`` in SGLang's ``server_args.py`` (the
    0.5.9 layout; later layouts need the whole wheel: ``sglang_flags/extract.py``)."""
    from tests.matrix.sglang_flags.extract import _add_argument_calls

    table: dict[str, FlagSpec] = {}
    for names, spec in _add_argument_calls(ast.parse(path.read_text(), filename=str(path))):
        for name in names:
            table[name] = FlagSpec(spec["canonical"], spec["nargs"], deprecated=spec["deprecated"])
    return table


def sglang_flags_recorded(version: str) -> dict[str, FlagSpec]:
    """The flag table recorded for ``version`` (``sglang_flags/<version>.json``)."""
    data = json.loads((Path(__file__).parent / "sglang_flags" / f"{version}.json").read_text())
    return {name: FlagSpec(f["canonical"], f["nargs"], deprecated=f["deprecated"]) for name, f in data["flags"].items()}


def parse_flags(tokens: list[str], tables: Mapping[str, Mapping[str, FlagSpec]] | None, *, ignore_prefix: str | None = None) -> tuple[dict[str, list[str]], list[str]]:
    """Split ``--flag [values]`` tokens; with flag tables (SGLang version -> table), check each
    flag exists in every version, takes the values it is given, is not deprecated, and appears
    once (aliases count as the same flag). Each error names the version it is about."""
    flags: dict[str, list[str]] = {}
    errors: list[str] = []
    seen: dict[str, dict[str, str]] = {v: {} for v in tables or {}}
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            errors.append(f"value {token!r} belongs to no flag")
            i += 1
            continue
        name, eq, inline = token.partition("=")
        values = [inline] if eq else []
        i += 1
        while i < len(tokens) and not tokens[i].startswith("--"):
            values.append(tokens[i])
            i += 1
        if ignore_prefix and name.startswith(ignore_prefix):
            continue
        if name in flags:
            errors.append(f"{name} appears twice ({flags[name]} and {values})")
        flags[name] = values
        for version, table in (tables or {}).items():
            errors += _check_flag(name, values, version, table, seen[version], tables or {})
    return flags, errors


def _check_flag(name: str, values: list[str], version: str, table: Mapping[str, FlagSpec], seen: dict[str, str], tables: Mapping[str, Mapping[str, FlagSpec]]) -> list[str]:
    spec = table.get(name)
    if spec is None:
        others = [v for v, t in tables.items() if name in t]
        where = f" (only in SGLang {', '.join(others)})" if others else ""
        return [f"{name} is not a flag of SGLang {version}'s ServerArgs{where}"]
    errors = []
    if spec.deprecated:
        errors.append(f"{name} is deprecated in SGLang {version}")
    if spec.canonical in seen and seen[spec.canonical] != name:
        errors.append(f"{name} and {seen[spec.canonical]} are the same flag in SGLang {version}, given twice")
    seen[spec.canonical] = name
    n = len(values)
    wrong = (
        (spec.nargs == 0 and n != 0)
        or (spec.nargs == 1 and n != 1)
        or (spec.nargs == "+" and n < 1)
        or (spec.nargs == "?" and n > 1)
    )
    if wrong:
        errors.append(f"{name} takes {spec.nargs} value(s) in SGLang {version}, given {n}: {values}")
    return errors


def command_after(text: str, marker: str) -> list[str] | None:
    """The tokens after ``marker`` (e.g. ``-m sglang.launch_server``) on the line that has it."""
    for line in text.splitlines():
        if marker in line and not line.lstrip().startswith("#"):
            tokens = shlex.split(line)
            head = shlex.split(marker)
            for i in range(len(tokens) - len(head) + 1):
                if tokens[i : i + len(head)] == head:
                    return tokens[i + len(head) :]
    return None


def line_with(text: str, pattern: str) -> str | None:
    for line in text.splitlines():
        if re.search(pattern, line) and not line.lstrip().startswith("#"):
            return line
    return None
