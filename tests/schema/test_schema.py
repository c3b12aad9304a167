"""``smlplay schema``: the generated JSON Schema accepts every shipped file, rejects what the
loader rejects, and follows the loader's schemas (it is generated, not a copy)."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import voluptuous as vol
import yaml

from engine.actions import base as actions_base
from engine.errors import SmlplayError, ValidationError
from engine.inventory import Inventory
from engine.load import specs
from engine.load.jsonschema import KINDS, document
from engine.load.loader import Loader
from engine.load.yaml import load_file, loads

ROOT = Path(__file__).resolve().parents[2]


def fresh_validator(kind: str) -> jsonschema.Draft7Validator:
    doc = document(kind)
    jsonschema.Draft7Validator.check_schema(doc)
    return jsonschema.Draft7Validator(doc)


#: Generated once per kind (it loads every role on the roles path); fresh_validator rebuilds.
validator = functools.lru_cache(maxsize=None)(fresh_validator)


def shipped(kind: str) -> list[Path]:
    files = sorted({p for pattern in KINDS[kind][2] for p in ROOT.glob(pattern)})
    if kind == "playbook":
        files += sorted(ROOT.glob("roles/*/examples/*.yaml"))
    return files


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_shipped_file_is_valid(kind: str) -> None:
    v = validator(kind)
    files = shipped(kind)
    if kind != "handlers":  # no shipped role has handlers/ today
        assert files, f"no shipped {kind} files found: the globs are stale"
    for path in files:
        errors = sorted(v.iter_errors(load_file(path)), key=lambda e: list(e.absolute_path))
        assert not errors, f"{path.relative_to(ROOT)}: {[list(e.absolute_path) for e in errors[:3]]} {errors[0].message[:300]}"


BAD_PLAYBOOKS = {
    "unknown play keyword": """
        - hosts: all
          taks: []
    """,
    "play without hosts": """
        - name: x
          tasks: []
    """,
    "misspelt action": """
        - hosts: all
          tasks:
            - shel: echo hi
    """,
    "two actions": """
        - hosts: all
          tasks:
            - shell: echo hi
              command: echo hi
    """,
    "no action": """
        - hosts: all
          tasks:
            - name: nothing to do
    """,
    "retries not a number": """
        - hosts: all
          tasks:
            - shell: echo hi
              retries: [3]
    """,
    "bad register name": """
        - hosts: all
          tasks:
            - shell: echo hi
              register: 2bad
    """,
    "unknown shell argument": """
        - hosts: all
          tasks:
            - shell: {cmd: echo hi, chdirr: /tmp}
    """,
    "process port out of range": """
        - hosts: all
          tasks:
            - process: {name: w, cmd: sleep 1, ports: [70000]}
    """,
    "duration in words": """
        - hosts: all
          tasks:
            - shell: echo hi
              timeout: five minutes
    """,
    "health without a probe": """
        - hosts: all
          tasks:
            - process: {name: w, cmd: sleep 1}
              health: {timeout: 10}
    """,
    "unknown meta": """
        - hosts: all
          tasks:
            - meta: flush_everything
    """,
    "block with an action": """
        - hosts: all
          tasks:
            - block:
                - shell: echo hi
              shell: echo no
    """,
    "nested task error inside a block": """
        - hosts: all
          tasks:
            - block:
                - shell: echo hi
                  registr: out
    """,
    "handler typo": """
        - hosts: all
          tasks: []
          handlers:
            - name: h
              shell: echo hi
              lisen: x
    """,
    "bad play variable name": """
        - hosts: all
          vars: {"my-var": 1}
    """,
    "allocation scheduler typo": """
        - hosts: localhost
          tasks:
            - slurm_allocate: {scheduler: slrum}
    """,
}


@pytest.mark.parametrize("case", list(BAD_PLAYBOOKS))
def test_bad_playbooks_are_rejected_by_both(case: str, tmp_path: Path) -> None:
    text = textwrap.dedent(BAD_PLAYBOOKS[case])
    assert list(validator("playbook").iter_errors(loads(text))), f"the schema accepted: {case}"
    path = tmp_path / "playbook.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError):  # the case is bad input for the engine too
        Loader(roles_path=[tmp_path]).load_playbook(path)


BAD_INVENTORIES = {
    "unknown group keyword": "all: {hostz: {a: {}}}",
    "connection typo": "all: {hosts: {a: {connection: shh}}}",
    "port out of range": "all: {hosts: {a: {ssh_port: 70000}}}",
    "bad variable name": "all: {vars: {'not-a-name': 1}}",
    "hosts a list": "all: {hosts: [a, b]}",
    "child group keyword": "all: {children: {gpu: {hsts: {a: {}}}}}",
}


@pytest.mark.parametrize("case", list(BAD_INVENTORIES))
def test_bad_inventories_are_rejected_by_both(case: str, tmp_path: Path) -> None:
    text = BAD_INVENTORIES[case]
    assert list(validator("inventory").iter_errors(loads(text))), f"the schema accepted: {case}"
    path = tmp_path / "inventory.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError):
        Inventory.from_file(path)


@pytest.mark.parametrize(
    "meta",
    [
        {"argument_specs": {"main": {"options": {"x": {"type": "string"}}}}},  # not one of ROLE_ARG_TYPES
        {"argument_specs": {"main": {"options": {"x": {"requird": True}}}}},
        {"dependencies": "router"},
        {"galaxy": {}},
    ],
)
def test_bad_role_meta_is_rejected(meta: dict[str, Any]) -> None:
    assert list(validator("role-meta").iter_errors(meta))
    with pytest.raises(vol.Invalid):
        vol.Schema(specs.ROLE_META)(meta)


def test_templates_pass_where_a_typed_value_goes() -> None:
    ok = loads(
        """
        - hosts: all
          tasks:
            - process: {name: w, cmd: sleep 1, ports: ["{{ base + 1 }}"], tier: "{{ t }}"}
              retries: "{{ n }}"
              timeout: 5m
              health: {http: "http://x/health", interval: 2s}
        """
    )
    assert not list(validator("playbook").iter_errors(ok))


def test_generated_from_the_registry_and_the_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new action or play keyword appears in the schema without touching the generator."""
    monkeypatch.setitem(
        actions_base.REGISTRY,
        "probe_widget",
        actions_base.Action("probe_widget", lambda ctx, args: {}, {vol.Required("size"): vol.All(int, vol.Range(min=1))}),
    )
    monkeypatch.setitem(specs.PLAY, vol.Optional("serial"), int)
    v = fresh_validator("playbook")
    assert not list(v.iter_errors([{"hosts": "all", "serial": 2, "tasks": [{"probe_widget": {"size": 3}}]}]))
    assert list(v.iter_errors([{"hosts": "all", "tasks": [{"probe_widget": {"size": 0}}]}]))
    assert list(v.iter_errors([{"hosts": "all", "serial": "two"}]))
    play = document("playbook")["definitions"]["play"]["properties"]
    assert set(play) == {(k.schema if isinstance(k, vol.Marker) else k) for k in specs.PLAY}


def test_cli_writes_every_kind_and_the_editor_mapping(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "engine", "schema", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=True,
    )
    mapping = json.loads(out.stdout)["yaml.schemas"]
    assert sorted(Path(p).name for p in mapping) == sorted(f"smlplay-{k}.schema.json" for k in KINDS)
    for path in mapping:
        jsonschema.Draft7Validator.check_schema(json.loads(Path(path).read_text(encoding="utf-8")))
    one = subprocess.run([sys.executable, "-m", "engine", "schema", "inventory"], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    assert json.loads(one.stdout)["title"] == "smlplay inventory"


CORPUS = ROOT / "tests" / "corpus" / "cases"
#: Loader messages that come from the schemas themselves (not from rendering, files or roles).
SCHEMA_LEVEL = (
    "unknown keyword", "unknown action", "invalid value for", "missing required keyword", "more than one action",
    "has no action", "must be a list", "must be a mapping", "cannot be used together", "unknown meta action",
    "value must be one of", "expected a variable name", "invalid variable name",
)


#: Corpus cases whose check JSON Schema cannot express (the schema accepts more there).
BEYOND_JSON_SCHEMA = {
    "-pause-seconds-overflow": "a duration string's size (99999999999999999999h) is not a pattern",
}


def _corpus_cases() -> list[tuple[str, str, Path]]:
    out = []
    for case in sorted(CORPUS.glob("*/expect.yaml")) if CORPUS.is_dir() else []:
        expect = yaml.safe_load(case.read_text(encoding="utf-8"))
        location, message = expect.get("location"), str(expect.get("message", ""))
        if not location or expect.get("xfail") or not any(m in message for m in SCHEMA_LEVEL):
            continue
        if any(case.parent.name.endswith(s) for s in BEYOND_JSON_SCHEMA):
            continue
        rel, line = location.rsplit(":", 2)[0], int(location.rsplit(":", 2)[1])
        lines = (case.parent / rel).read_text(encoding="utf-8").splitlines()
        if 0 < line <= len(lines) and "{{" in lines[line - 1]:
            continue  # a {{ }} value: checked after rendering, an editor cannot know it
        kind = (
            "playbook" if rel == "playbook.yaml" else "inventory" if rel.startswith("inventory")
            else "tasks" if "/tasks/" in rel else "role-meta" if "/meta/" in rel else None
        )
        if kind is not None:
            out.append((case.parent.name, kind, case.parent / rel))
    return out


@pytest.mark.parametrize(("case", "kind", "path"), _corpus_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_corpus_schema_errors_are_schema_errors(case: str, kind: str, path: Path) -> None:
    """Every bad-input case whose error is a schema error is flagged by the editor schema too."""
    try:
        data = load_file(path)  # YAML 1.2, as editors read it: `yes` is a string
    except SmlplayError:
        pytest.skip("not YAML that an editor could check")
    assert list(validator(kind).iter_errors(data)), f"{case}: the generated {kind} schema accepts {path.relative_to(CORPUS)}"


def test_corpus_cross_check_finds_cases() -> None:
    assert len(_corpus_cases()) >= 20  # the filter above still matches the corpus' messages


def test_role_parameters_follow_the_argument_specs(tmp_path: Path) -> None:
    """`roles: [{role: router, router_impl: ...}]` is checked against roles/router/meta."""
    v = validator("playbook")
    ok = [{"hosts": "all", "roles": ["router", {"role": "router", "router_impl": "sglang-router", "router_port": "{{ p }}", "anything_else": 1}]}]
    assert not list(v.iter_errors(ok))
    for bad in ({"role": "router", "router_impl": "nginx"}, {"role": "router", "router_port": "eighty"}, {"role": "allocate", "slurm_extra_args": "--mem=0"}):
        assert list(v.iter_errors([{"hosts": "all", "roles": [bad]}])), bad
    # the same mistake is bad input for the engine too (checked when the role's tasks render)
    (tmp_path / "inventory.yaml").write_text("all: {hosts: {localhost: {connection: local}}}\n", encoding="utf-8")
    play = tmp_path / "play.yaml"
    play.write_text("- hosts: localhost\n  roles:\n    - {role: router, router_impl: nginx}\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "engine", "check", str(play), "-i", str(tmp_path / "inventory.yaml")], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert out.returncode == 2 and "router_impl" in out.stderr, out.stderr
