"""``smlplay schema [KIND]``: JSON Schema for playbooks, task files, role meta, inventories.

Generated from the loader's own schemas (:mod:`engine.load.jsonschema`), so an editor with
yaml-language-server completes and checks exactly what ``smlplay check`` accepts.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from engine.cli import _guard

_KINDS = ("playbook", "tasks", "handlers", "role-meta", "vars", "inventory")


@click.command()
@click.argument("kind", type=click.Choice(_KINDS), default="playbook")
@click.option("--dir", "out_dir", type=click.Path(file_okay=False), help="Write every kind to DIR/smlplay-KIND.schema.json (and print the editor settings) instead of printing one.")
@_guard
def schema(kind: str, out_dir: str | None) -> None:
    """Print the JSON Schema (draft-07) of one kind of file: playbook (default), tasks,
    handlers, role-meta, vars or inventory. For yaml-language-server put
    ``# yaml-language-server: $schema=PATH`` on a file's first line, or map globs to the
    files written by --dir in the editor's ``yaml.schemas`` setting."""
    from engine.load.jsonschema import KINDS, document

    if out_dir is None:
        click.echo(json.dumps(document(kind), indent=2, sort_keys=False))
        return
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    mapping: dict[str, list[str]] = {}
    for name, (_, _, globs) in KINDS.items():
        path = target / f"smlplay-{name}.schema.json"
        path.write_text(json.dumps(document(name), indent=2) + "\n", encoding="utf-8")
        mapping[str(path.resolve())] = list(globs)
        click.echo(f"wrote {path}", err=True)
    click.echo(json.dumps({"yaml.schemas": mapping}, indent=2))
