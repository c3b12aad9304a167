"""``smlplay render PLAYBOOK``: the plan (as ``run --dry-run``), or a diff of two plans."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from engine.cli import _guard, _inventory, _options, common_options, parse_extra_vars

if TYPE_CHECKING:
    from engine.plan import RenderedPlan


def rendered(playbook: str, **kw: Any) -> RenderedPlan:
    """PLAYBOOK's plan with file positions relative to its directory."""
    from engine import plan as plan_format
    from engine.executor.run import load
    from engine.executor.run import render as render_plan

    inventory = _inventory(kw.get("inventory"), playbook)
    options = _options(**kw)
    book, _inv, loader = load(playbook, inventory)
    return plan_format.relative(render_plan(book, inventory, options, loader), Path(playbook).parent)


def print_plan(playbook: str, fmt: str, out: str | None, **kw: Any) -> None:
    from engine import plan as plan_format

    plan = rendered(playbook, **kw)
    if out:
        written = plan_format.write_tree(plan, Path(out))
        click.echo(f"wrote {len(written)} files to {out}")
    click.echo(plan_format.FORMATS[fmt](plan), nl=False)


def recorded(run: str) -> tuple[RenderedPlan, str]:
    """The plan a run recorded when it started, and a name for it."""
    from engine.errors import ValidationError
    from engine.plan import RenderedPlan
    from engine.runs import RunRecord

    record = RunRecord.open(run)
    path = record.path / "plan.json"
    if not path.exists():
        raise ValidationError(f"run {record.id} recorded no plan ({path} is missing)", hint="runs record plan.json when they start; pick another run with `smlplay runs`")
    return RenderedPlan.from_dict(json.loads(path.read_text(encoding="utf-8"))), f"run {record.id}"


def _side_name(playbook: str, inventory: str | None, extra: tuple[str, ...]) -> str:
    return " ".join([playbook, *(["-i", inventory] if inventory else []), *(f"-e {e}" for e in extra)])


@click.command()
@click.argument("playbook", type=click.Path(dir_okay=False))
@common_options
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text")
@click.option("--out", type=click.Path(file_okay=False), help="Write one file per host/step here.")
@click.option("--diff", "other", type=click.Path(dir_okay=False), metavar="OTHER", help="Show what changes on which node from PLAYBOOK to OTHER (rendered with the same -i and -e); exit 1 if they differ, like diff.")
@click.option("--diff-against", "against", metavar="RUN", help="Show what changes on which node from the plan RUN recorded to PLAYBOOK's plan now.")
@click.option("--diff-extra-vars", "-E", "other_vars", multiple=True, help="Extra vars of the other side only, after -e (`render A.yaml -E layout.decode.tp=4` compares A with A at decode TP 4).")
@click.option("--diff-inventory", "other_inventory", help="Inventory of the other side (default: the same as -i).")
@_guard
def render(playbook: str, fmt: str, out: str | None, other: str | None, against: str | None, other_vars: tuple[str, ...], other_inventory: str | None, **kw: Any) -> None:
    """Render PLAYBOOK without running anything (same as run --dry-run), or compare two plans."""
    from engine.errors import ValidationError

    if not (other or against or other_vars or other_inventory):
        print_plan(playbook, fmt, out, **kw)
        return
    if other and against:
        raise ValidationError("--diff and --diff-against are alternatives: give one")
    if against and (other_vars or other_inventory):
        raise ValidationError("-E/--diff-inventory set the other playbook's side; with --diff-against the other side is the recorded run", hint="use -e to change the side rendered now")
    if out:
        raise ValidationError("--out writes a plan; it does not go with --diff", hint="render each side with --out to two directories and `diff -r` them")
    from engine import plan_diff

    parse_extra_vars(other_vars)  # bad -E is a usage error before anything renders
    new = rendered(playbook, **kw)
    new_name = _side_name(playbook, kw.get("inventory"), tuple(kw.get("extra_vars", ())))
    if against:
        old, old_name = recorded(against)
    else:
        target = other or playbook
        other_kw = {**kw, "extra_vars": (*kw.get("extra_vars", ()), *other_vars), "inventory": other_inventory or kw.get("inventory")}
        old, old_name = new, new_name
        new = rendered(target, **other_kw)
        new_name = _side_name(target, other_kw["inventory"], other_kw["extra_vars"])
    diffs = plan_diff.diff(old, new)
    click.echo(plan_diff.FORMATS[fmt](diffs, old_name, new_name), nl=False)
    sys.exit(1 if diffs else 0)
