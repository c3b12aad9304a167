"""The collector policy of the ``smlplay`` process (engine.collector): each check runs in
a fresh interpreter, the way the entry point starts one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DEFAULT = [700, 10, 10]


def _run(code: str, *, cwd: Path | None = None, env: dict[str, str] | None = None) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert lines, out.stdout + out.stderr
    return dict(json.loads(lines[-1]))


def test_start_up_collects_rarely_then_freezes_and_restores_the_thresholds() -> None:
    seen = _run(
        "import gc, json\n"
        "from engine import collector\n"
        "before = gc.get_threshold(); collector.start_up(); during = gc.get_threshold()\n"
        "collector.started(); after = gc.get_threshold(); frozen = gc.get_freeze_count()\n"
        "collector.started()  # a second call changes nothing\n"
        "print(json.dumps(dict(before=before, during=during, after=after, frozen=frozen, again=gc.get_threshold())))\n"
    )
    assert seen["before"] == DEFAULT and seen["after"] == DEFAULT and seen["again"] == DEFAULT
    assert seen["during"] == [100_000, 100, 100]
    assert int(str(seen["frozen"])) > 1000  # the modules at least


def test_started_without_start_up_leaves_an_in_process_caller_alone() -> None:
    seen = _run(
        "import gc, json\nfrom engine import collector\ncollector.started()\n"
        "print(json.dumps(dict(t=gc.get_threshold(), frozen=gc.get_freeze_count())))\n"
    )
    assert seen == {"t": DEFAULT, "frozen": 0}


_PROBE = (
    "import atexit, gc, json, sys\n"
    "seen = {}\n"
    "atexit.register(lambda: print(json.dumps(seen)))\n"
    "import engine.executor.run as run\n"
    "render = run.render\n"
    "def probe(*a, **k):\n"
    "    seen['plan'] = gc.get_threshold(); return render(*a, **k)\n"
    "run.render = probe\n"
    "import engine.executor.runner as runner\n"
    "task = runner.Runner.run_task\n"
    "def probe_task(self, *a, **k):\n"
    "    if not self.options.dry_run: seen.setdefault('first_task', gc.get_threshold())\n"
    "    return task(self, *a, **k)\n"
    "runner.Runner.run_task = probe_task\n"
    "sys.argv = ['smlplay', ARGS]\n"
    "from engine.cli import entry\n"
    "entry()\n"
)


def test_a_run_plans_with_rare_collections_and_runs_its_tasks_with_the_usual_ones(tmp_path: Path) -> None:
    (tmp_path / "play.yaml").write_text("- hosts: localhost\n  tasks:\n    - command: 'true'\n")
    seen = _run(_PROBE.replace("ARGS", "'run', 'play.yaml'"), cwd=tmp_path, env=_env(tmp_path))
    assert seen == {"plan": [100_000, 100, 100], "first_task": DEFAULT}


def test_other_commands_collect_as_usual(tmp_path: Path) -> None:
    (tmp_path / "play.yaml").write_text("- hosts: localhost\n  tasks:\n    - command: 'true'\n")
    for args in ("'check', 'play.yaml'", "'run', '--dry-run', 'play.yaml'"):
        seen = _run(_PROBE.replace("ARGS", args), cwd=tmp_path, env=_env(tmp_path))
        assert seen == {"plan": DEFAULT}, args


def _env(tmp_path: Path) -> dict[str, str]:
    import os

    return {**os.environ, "SMLPLAY_RUNS_DIR": str(tmp_path / "runs"), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def _probe(tmp_path: Path, args: str, old: str, new: str) -> dict[str, object]:
    """Run ``smlplay ARGS`` on a one-task playbook with a line of the probe replaced."""
    (tmp_path / "play.yaml").write_text("- hosts: localhost\n  tasks:\n    - command: 'true'\n")
    probe = _PROBE.replace("ARGS", args)
    assert old in probe
    return _run(probe.replace(old, new), cwd=tmp_path, env=_env(tmp_path))


def test_a_dry_run_freezes_what_survives_each_full_collection(tmp_path: Path) -> None:
    seen = _probe(
        tmp_path,
        "'run', '--dry-run', 'play.yaml'",
        "    seen['plan'] = gc.get_threshold(); return render(*a, **k)\n",
        "    seen['plan'] = gc.get_threshold()\n"
        "    keep = [[i] for i in range(5000)]  # alive across the collection\n"
        "    before = gc.get_freeze_count(); gc.collect(1); seen['after_young'] = gc.get_freeze_count() - before\n"
        "    gc.collect(); seen['after_full'] = gc.get_freeze_count() - before; del keep\n"
        "    return render(*a, **k)\n",
    )
    assert seen["plan"] == DEFAULT
    assert seen["after_young"] == 0  # a young collection freezes nothing
    assert int(str(seen["after_full"])) >= 5000  # the survivors of a full one are frozen


def test_a_run_never_freezes_after_a_full_collection(tmp_path: Path) -> None:
    seen = _probe(
        tmp_path,
        "'run', 'play.yaml'",
        "    if not self.options.dry_run: seen.setdefault('first_task', gc.get_threshold())\n",
        "    if not self.options.dry_run and 'full' not in seen:\n"
        "        keep = [[i] for i in range(5000)]\n"
        "        before = gc.get_freeze_count(); gc.collect(); seen['full'] = gc.get_freeze_count() - before; del keep\n",
    )
    assert seen["full"] == 0  # a long run collects its garbage: nothing it makes is frozen
