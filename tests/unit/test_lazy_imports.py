"""What start-up does not import: each check runs in a fresh interpreter, since this test
process has imported everything already."""

from __future__ import annotations

import subprocess
import sys

from engine.actions.allocate import SCHEDULER_NAMES


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout
    return set(out.split())


def test_paramiko_loads_without_invoke_and_match_exec_still_works() -> None:
    mods = _modules_after("from engine.transport import _paramiko\n_paramiko.load()")
    assert "paramiko" in mods and "invoke" not in mods
    # `Match exec` in an ssh config imports invoke when it runs, and works as before
    mods = _modules_after(
        "from engine.transport import _paramiko\n"
        "config = _paramiko.load().SSHConfig.from_text('Match exec true\\n  User bob\\n')\n"
        "assert config.lookup('somehost')['user'] == 'bob'"
    )
    assert "invoke" in mods


def test_a_run_without_allocations_or_http_does_not_import_slurm_or_http() -> None:
    # (the node watch every run starts lives in engine.schedulers, whose names load on use)
    mods = _modules_after("import engine.executor.run, engine.display, engine.cli, engine.schedulers.nodewatch")
    watch = {"engine.schedulers", "engine.schedulers.nodewatch"}
    assert not {m for m in mods - watch if m.startswith(("engine.slurm", "engine.schedulers", "engine.sim"))}
    assert "engine.httpclient" not in mods and "http.client" not in mods


def test_the_scheduler_names_in_the_schema_are_the_schedulers() -> None:
    from engine.schedulers import SCHEDULERS

    assert sorted(SCHEDULER_NAMES) == sorted(SCHEDULERS)
