"""Mutations and random documents for the property tests (test_properties.py).

Everything works on YAML text: parse the shipped file with PyYAML (plain values), change one
thing (delete a key, rename a key, change a value's type, insert a key or garbage), dump it
again; or change the text itself (a garbage character, a dropped or duplicated line).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml
from hypothesis import strategies as st

from engine.actions import REGISTRY
from engine.model import BLOCK_KEYWORDS, CONTROL_ACTIONS, TASK_KEYWORDS

#: Keys a user might write: every keyword, action and argument name, plus near misses.
VOCABULARY = sorted(
    {
        *TASK_KEYWORDS, *BLOCK_KEYWORDS, *CONTROL_ACTIONS, *REGISTRY, "listen", "hosts", "host",
        "roles", "tasks", "pre_tasks", "post_tasks", "handlers", "vars_files", "gather_facts",
        "children", "connection", "ssh_port", "ssh_host", "ssh_user", "srun_gateway",
        "http", "tcp", "log", "cmd", "interval", "url", "status", "port", "dest", "src",
        "content", "seconds", "minutes", "dependencies", "argument_specs", "options", "type",
        "required", "default", "choices", "role", "tasks_from", "file",
        *(str(k.schema if hasattr(k, "schema") else k) for a in REGISTRY.values() for k in a.schema),
    }
)

#: Values of the wrong type, out of range, half-templates, durations and garbage.
WEIRD = st.sampled_from(
    [
        None, True, False, 0, -1, 1, 70000, 65536, 3.5, -0.5, "", " ", "abc", "5m", "30s", "1h30m",
        "soon", "-5s", "{{", "}}", "{{ undefined_var }}", "{{ 1 + }}", "{% if %}", "{{ port }}",
        "yes", "no", "docker", "0644", "9999", "GETT", "[", "]", "{a: 1}", "a: b: c", "\t",
        "x" * 300, [], {}, [1, "x"], {"a": 1}, [[]], {"": None}, ["{{ item }}"], {"url": 3},
        {"port": "http"}, {"regex": "("}, "(", "*", "\\", "\x00", "é", "localhost",
    ]
)


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a node below the root (dict keys and list indexes)."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield (*prefix, i)
            yield from paths(value, (*prefix, i))


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        data = data[step]
    return data


def _typo(word: str, draw: st.DrawFn) -> str:
    if not word:
        return "x"
    i = draw(st.integers(0, len(word) - 1))
    how = draw(st.sampled_from(["drop", "swap", "add", "case", "vocab"]))
    if how == "drop":
        return word[:i] + word[i + 1:] or "x"
    if how == "swap" and len(word) > 1:
        j = min(i + 1, len(word) - 1)
        chars = list(word)
        chars[i], chars[j] = chars[j], chars[i]
        return "".join(chars)
    if how == "add":
        return word[:i] + draw(st.sampled_from("aesz_-.")) + word[i:]
    if how == "case":
        return word.upper()
    return draw(st.sampled_from(VOCABULARY))


@st.composite
def mutated(draw: st.DrawFn, text: str) -> tuple[str, str]:
    """``(description, new text)``: one mutation of a YAML document."""
    kind = draw(st.sampled_from(["delete", "rename", "retype", "insert", "char", "dropline", "dupline", "indent"]))
    lines = text.splitlines(keepends=True)
    if kind in ("char", "dropline", "dupline", "indent") and lines:
        i = draw(st.integers(0, len(lines) - 1))
        if kind == "char":
            col = draw(st.integers(0, len(lines[i])))
            garbage = draw(st.sampled_from([":", "-", "{", "}", "[", "]", "'", '"', "&", "*", "!", "%", "|", ">", "#", " ", "\t", "x", "{{"]))
            lines[i] = lines[i][:col] + garbage + lines[i][col:]
        elif kind == "dropline":
            del lines[i]
        elif kind == "dupline":
            lines.insert(i, lines[i])
        else:
            lines[i] = draw(st.sampled_from([" ", "  ", ""])) + lines[i].lstrip(" ") if draw(st.booleans()) else "  " + lines[i]
        return f"{kind} at line {i + 1}", "".join(lines)
    data = yaml.safe_load(text)
    candidates = list(paths(data))
    if not candidates:
        return "whole document", yaml.safe_dump(draw(WEIRD))
    path = draw(st.sampled_from(candidates))
    parent = _parent(data, path)
    last = path[-1]
    if kind == "delete":
        del parent[last]
    elif kind == "rename" and isinstance(parent, dict):
        new = _typo(str(last), draw)
        parent[new] = parent.pop(last)
    elif kind == "insert":
        target = parent[last]
        if isinstance(target, dict):
            target[draw(st.sampled_from(VOCABULARY))] = draw(WEIRD)
        elif isinstance(target, list):
            target.insert(draw(st.integers(0, len(target))), draw(st.one_of(WEIRD, st.fixed_dictionaries({draw(st.sampled_from(VOCABULARY)): WEIRD}))))
        else:
            parent[last] = draw(WEIRD)
    else:
        parent[last] = draw(WEIRD)
    return f"{kind} {'.'.join(map(str, path))}", yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


KEYS = st.one_of(st.sampled_from(VOCABULARY), st.text(min_size=1, max_size=8))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70000), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), WEIRD, st.sampled_from(sorted(REGISTRY)),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    """A random YAML document: mostly a list of play-like mappings, sometimes anything."""
    if draw(st.booleans()):
        plays = draw(st.lists(st.dictionaries(KEYS, DOCUMENTS, min_size=1, max_size=5), min_size=1, max_size=3))
        for play in plays:
            if draw(st.booleans()):
                play["hosts"] = "localhost"
            if draw(st.booleans()):
                play["tasks"] = draw(st.lists(st.dictionaries(KEYS, DOCUMENTS, min_size=1, max_size=4), max_size=3))
        return yaml.safe_dump(plays, sort_keys=False, allow_unicode=True)
    return yaml.safe_dump(draw(DOCUMENTS), allow_unicode=True)


LOCATION = re.compile(r"[\w./@+-]+\.(?:ya?ml|j2):\d+:\d+")
