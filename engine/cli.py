"""The ``smlplay`` command line: parse, call the API, render the result. No logic here.

Exit codes: 0 ok, 1 a task failed, 2 usage or validation error, 130 interrupted.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from engine import collector
from engine.errors import SmlplayError, ValidationError

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_INVENTORY = "inventory/local.yaml"


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def _fail(err: SmlplayError) -> None:
    from engine.display import render_error
    from engine.secrets import mask_error

    render_error(mask_error(err), _console(stderr=True))
    sys.exit(err.exit_code)


def _guard(fn: F) -> F:
    """Turn engine errors into a message and an exit code, never a traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SmlplayError as err:
            _fail(err)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, SystemExit):
            raise
        except Exception as exc:  # a bug in smlplay: say so plainly, keep the trace for -vv
            import os
            import traceback

            if os.environ.get("SMLPLAY_DEBUG"):
                traceback.print_exc()
            from engine.secrets import mask_text

            click.echo(mask_text(f"internal error: {type(exc).__name__}: {exc} (set SMLPLAY_DEBUG=1 for the traceback)"), err=True)
            sys.exit(3)

    return wrapper  # type: ignore[return-value]


def parse_extra_vars(values: tuple[str, ...]) -> tuple[Any, ...]:
    """``-e k=v`` (strings; several per -e), ``-e @file.yaml``, ``-e '{"json": 1}'``;
    later ones win. Dotted keys (``layout.decode.workers=2``) change one nested field."""
    from engine.load.extravars import check_inline_vars
    from engine.load.yaml import load_file, loads
    from engine.vars import Layer

    layers = []
    for raw in values:
        text = raw.strip()
        if text.startswith("@"):
            from engine.load.extravars import check_file_vars

            data = check_file_vars(load_file(text[1:]), text[1:], raw)
            layers.append(Layer("extra vars", f"-e {raw}", data))
        elif text.startswith(("{", "[")):
            data = loads(text, "<-e>")
            if not isinstance(data, dict):
                raise ValidationError(f"-e {raw}: JSON/YAML extra vars must be a mapping")
            layers.append(Layer("extra vars", "-e (json)", check_inline_vars(data, raw)))
        else:
            pairs = {}
            for token in shlex.split(text):
                if "=" not in token:
                    raise ValidationError(f"-e {raw!r}: expected key=value, @file.yaml or a JSON mapping")
                key, _, value = token.partition("=")
                pairs[key] = value
            layers.append(Layer("extra vars", f"-e {raw}", check_inline_vars(pairs, raw)))
    return tuple(layers)


def _inventory(path: str | None, playbook: str | None = None) -> str | None:
    """``-i``, else the embedded default: ``inventory/local.yaml`` in the working directory
    or beside the playbook's project (``playbooks/x.yaml`` -> ``inventory/local.yaml``), so
    the same command works from any directory; else the implicit localhost."""
    if path:
        if not Path(path).exists():
            raise ValidationError(f"inventory file not found: {path}")
        return path
    candidates = [Path(DEFAULT_INVENTORY)]
    if playbook:
        here = Path(playbook).resolve().parent
        candidates += [here / DEFAULT_INVENTORY, here.parent / DEFAULT_INVENTORY]
    return next((str(c) for c in candidates if c.exists()), None)


def _options(**kw: Any) -> Any:
    from engine.executor.context import RunOptions
    from engine.secrets import remember_layers
    from engine.units import parse_duration

    def tags(values: tuple[str, ...]) -> frozenset[str]:
        return frozenset(t.strip() for v in values for t in v.split(",") if t.strip())

    return RunOptions(
        extra_vars=remember_layers(parse_extra_vars(kw.get("extra_vars", ()))),  # before a record writes argv
        forks=kw.get("forks", 16),
        tags=tags(kw.get("tags", ())),
        skip_tags=tags(kw.get("skip_tags", ())),
        limit=kw.get("limit"),
        start_at_task=kw.get("start_at_task"),
        dry_run=kw.get("dry_run", False),
        keep_running=kw.get("keep_running", False),
        verbosity=kw.get("verbose", 0),
        health_timeout=parse_duration(kw["health_timeout"], what="--health-timeout") if kw.get("health_timeout") else None,
        local_hosts=frozenset(kw.get("local_hosts") or ()),
        run_id=kw.get("run_id"),
        hold=kw.get("hold", False),
    )


def common_options(fn: F) -> F:
    decorators = [
        click.option("-i", "--inventory", "inventory", help=f"Inventory file (default {DEFAULT_INVENTORY} if present, else implicit localhost)."),
        click.option("-e", "--extra-vars", "extra_vars", multiple=True, help="k=v, @file.yaml or a JSON mapping; repeatable, last wins."),
        click.option("-t", "--tags", multiple=True, help="Run only tasks with these tags."),
        click.option("--skip-tags", multiple=True, help="Skip tasks with these tags."),
        click.option("-l", "--limit", help="Limit hosts to a pattern (a:b, a:&b, a:!b)."),
        click.option("--start-at-task", help="Start at the task with this name."),
    ]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="smlplay")
@click.pass_context
def main(ctx: click.Context) -> None:
    """smlplay: playbooks that bring up LLM inference stacks on Slurm clusters."""
    if ctx.invoked_subcommand != "run":  # a run's start-up ends when its plan is made
        collector.started()


def entry() -> None:
    """The ``smlplay`` process: :func:`main`, with the collector set for a short-lived
    process (:mod:`engine.collector`: rare collections during start-up, none at exit).
    Only for the process: tests call :func:`main` in-process."""
    collector.start_up()
    try:
        main()
    finally:
        collector.at_exit()


@main.command()
@click.argument("playbook", type=click.Path(dir_okay=False))
@common_options
@click.option("--dry-run", "--check", "dry_run", is_flag=True, help="Render every task for every host; run nothing.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown"]), default="text", help="Dry-run output format.")
@click.option("--out", type=click.Path(file_okay=False), help="Dry-run: write one file per host/step here.")
@click.option("-f", "--forks", type=click.IntRange(1, 512), default=16, show_default=True)
@click.option("--keep-running", is_flag=True, help="Leave background processes running (tear down later with `smlplay down`).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", help="Live output: rich text or JSON events.")
@click.option("--health-timeout", help="Default health-check deadline (e.g. 60m) for tasks that set none.")
@click.option("-v", "--verbose", count=True, help="-v: the Ansible-style log of every task; -vv: with stdout/stderr.")
@click.option("--detach", is_flag=True, help="Submit the run as a Slurm batch job (runs inside its allocation; survives disconnecting).")
@click.option("--local-host", "local_hosts", multiple=True, help="A host this engine runs on (reached locally whatever the inventory says).")
@click.option("--run-id", hidden=True, help="Continue this run record (used by --detach inside the job).")
@click.option("--hold", is_flag=True, hidden=True, help="After the last play, serve until stopped, then tear down.")
@click.option("--sweep", "sweeps", multiple=True, metavar="PATH=V1,V2", help="Run once per value of this -e path (a grid over all --sweep options); repeatable.")
@click.option("--zip", "zip_axes", is_flag=True, help="--sweep values go together (the i-th of each) instead of a grid.")
@click.option("--fail-fast", is_flag=True, help="Stop a sweep at its first failed point.")
@_guard
def run(playbook: str, dry_run: bool, fmt: str, out: str | None, output: str, **kw: Any) -> None:
    """Run PLAYBOOK (or render it with --dry-run)."""
    sweeps, zip_axes, fail_fast = kw.pop("sweeps", ()), kw.pop("zip_axes", False), kw.pop("fail_fast", False)
    if sweeps or dry_run or kw.get("detach"):
        # only a run's own start-up ends at its first task (execute); a dry-run computes
        # its plan and exits: what survives a full collection is frozen
        collector.started(short_lived=dry_run and not sweeps)
    if sweeps:
        from engine.commands.sweep_run import run_sweep_command

        run_sweep_command(playbook, sweeps, zip_axes=zip_axes, fail_fast=fail_fast, dry_run=dry_run, fmt=fmt, output=output, **kw)
        return
    if dry_run:
        from engine.commands.render import print_plan

        print_plan(playbook, fmt, out, **kw)
        return
    from engine.executor.run import execute
    from engine.live import close_sink, make_sink

    sink = make_sink(output, kw.get("verbose", 0))  # live view, plain lines, -v log or JSON
    try:
        if kw.pop("detach", False):
            from engine.executor.detach import forwarded_options, submit

            submit(playbook, _inventory(kw.get("inventory"), playbook), _options(**kw), forward=forwarded_options(kw), sink=sink, argv=sys.argv[1:])
            return
        outcome = execute(playbook, _inventory(kw.get("inventory"), playbook), _options(**kw), sink=sink, argv=sys.argv[1:])
    finally:
        close_sink(sink)
    if outcome.run_dir is not None and (outcome.run_dir / "results").is_dir():
        from engine.commands.sweep_run import report_run

        report_run(outcome.run_dir)
    if outcome.run_dir is not None and output != "json":
        from engine.live.outputs import metrics_lines

        for line in metrics_lines(outcome.run_dir):
            click.echo(line)
    sys.exit(outcome.exit_code)


@main.command()
@click.argument("playbook", type=click.Path(dir_okay=False))
@common_options
@_guard
def check(playbook: str, **kw: Any) -> None:
    """Validate PLAYBOOK, its roles, their arguments and every template, running nothing."""
    from engine.executor.run import load, render_plan

    inventory = _inventory(kw.get("inventory"), playbook)
    book, _inv, loader = load(playbook, inventory)
    plan = render_plan(book, inventory, _options(**kw), loader)
    steps = sum(len(p["steps"]) for p in plan)
    click.echo(f"ok: {playbook}: {len(book.plays)} plays, {steps} rendered steps")


@main.command("vars")
@click.argument("playbook", type=click.Path(dir_okay=False))
@click.option("--host", default="localhost", show_default=True)
@click.option("--play", "play_index", type=int, default=1, show_default=True, help="Which play's variables (1-based).")
@click.option("--explain", "explain", help="Show where NAME's value comes from.")
@click.option("-i", "--inventory", "inventory")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True)
@_guard
def vars_(playbook: str, host: str, play_index: int, explain: str | None, inventory: str | None, extra_vars: tuple[str, ...]) -> None:
    """Print a host's final variables for a play, or explain one (--explain NAME)."""
    from engine.events import NullSink
    from engine.executor.run import load
    from engine.executor.runner import Inherited, Runner, _plain

    inv_path = _inventory(inventory, playbook)
    book, inv, loader = load(playbook, inv_path)
    if not 1 <= play_index <= len(book.plays):
        raise ValidationError(f"--play {play_index}: the playbook has {len(book.plays)} plays")
    runner = Runner(book, inv, _options(extra_vars=extra_vars), loader=loader, sink=NullSink(), run_dir=Path("runs/<run-id>"), run_id="<run-id>")
    play = book.plays[play_index - 1]
    runner._play_layers = runner._build_play_layers(play)
    scope = runner.scope_for(host, None, Inherited())
    if explain:
        try:
            info = scope.explain(explain)
        except KeyError:
            raise ValidationError(f"variable '{explain}' is not defined for host '{host}' in play '{play.name}' (role defaults are visible only inside their role)") from None
        click.echo(f"{explain} = {json.dumps(_plain(info.value), sort_keys=True, default=str)}")
        click.echo(f"  from {info.winner}")
        for origin, raw in info.candidates[1:]:
            click.echo(f"  overrides {origin}: {json.dumps(_plain(raw), default=str)}")
        return
    for name in sorted(scope):
        if name in ("hostvars", "groups"):
            continue
        try:
            value = _plain(scope[name])
        except SmlplayError as exc:
            value = f"<error: {exc.message}>"
        origin = scope.explain(name).winner
        click.echo(f"{name} = {json.dumps(value, sort_keys=True, default=str)}    # {origin}")


@main.group()
def roles() -> None:
    """Inspect the roles on the roles path."""


@roles.command("list")
@_guard
def roles_list() -> None:
    """List roles with their short description."""
    from engine.load.loader import Loader, default_roles_path

    loader = Loader(default_roles_path())
    names = sorted({d.name for base in default_roles_path() if base.is_dir() for d in base.iterdir() if (d / "tasks").is_dir()})
    for name in names:
        role = loader.role(name, None, "roles list")
        click.echo(f"{name:20} {role.description}  ({role.path})")


@roles.command("show")
@click.argument("name")
@_guard
def roles_show(name: str) -> None:
    """Show a role's arguments: types, defaults, choices and docs."""
    from engine.load.loader import Loader, default_roles_path

    role = Loader(default_roles_path()).role(name, None, "roles show")
    click.echo(f"{role.name}: {role.description}\n  path: {role.path}")
    if role.dependencies:
        click.echo("  dependencies: " + ", ".join(d.name for d in role.dependencies))
    click.echo("  arguments:")
    for spec in role.argument_specs.values():
        default = role.defaults.get(spec.name, spec.default if spec.has_default else None)
        flags = "required" if spec.required else f"default {json.dumps(default, default=str)}"
        choices = f", one of {', '.join(map(str, spec.choices))}" if spec.choices else ""
        click.echo(f"    {spec.name} ({spec.type}{choices}; {flags})\n        {spec.description}")


@main.command("runs")
@_guard
def runs_cmd() -> None:
    """List recorded runs, newest last."""
    from engine.runs import RunRecord

    for record in RunRecord.all():
        alive = " (owner alive)" if record.owner_alive() else ""
        click.echo(f"{record.id:48} {record.status:14} {record.state.get('playbook', '')}{alive}")


@main.command()
@click.argument("run_id", metavar="RUN")
@_guard
def down(run_id: str) -> None:
    """Tear down RUN (or every run a SWEEP left): stop its processes, run its pending
    handlers, release allocations."""
    from engine.display import TextDisplay
    from engine.executor.run import down as do_down
    from engine.runs import RunRecord
    from engine.sweep import SweepRecord, down_sweep

    sweep = SweepRecord.find(run_id)
    if sweep is not None:
        sys.exit(down_sweep(sweep, sink=TextDisplay(), echo=click.echo))

    record = RunRecord.open(run_id)
    if record.state.get("detached"):
        from engine.executor.detach import down_detached

        sys.exit(down_detached(record, sink=TextDisplay()))
    sys.exit(do_down(run_id, sink=TextDisplay()))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def sim(ctx: click.Context) -> None:
    """Run the simulated SGLang-compatible server (same flags as sglang.launch_server)."""
    from engine.sim.__main__ import main as sim_main

    sys.exit(sim_main(list(ctx.args)))


from engine.commands.report import report  # noqa: E402

main.add_command(report)
from engine.commands.schema import schema  # noqa: E402

main.add_command(schema)
from engine.commands.preflight import preflight  # noqa: E402

main.add_command(preflight)
from engine.commands.mcp import mcp  # noqa: E402

main.add_command(mcp)

from engine.commands.status import status  # noqa: E402

main.add_command(status)

from engine.commands.logs import logs  # noqa: E402

main.add_command(logs)

from engine.commands.render import render  # noqa: E402

main.add_command(render)

if __name__ == "__main__":  # pragma: no cover
    main()
