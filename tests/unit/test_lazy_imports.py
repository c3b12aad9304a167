"""What start-up does not import: each check runs in a fresh interpreter, since this test
process has imported everything already."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_paramiko_loads_without_importlib_metadata_and_knows_its_version() -> None:
    mods = _modules_after(
        "from engine.transport import _paramiko\n"
        "p = _paramiko.load()\n"
        "import sys\n"
        "assert 'importlib.metadata' not in sys.modules\n"
        "from importlib import metadata\n"
        "assert p.__version__ == metadata.version('paramiko') and p.Transport._CLIENT_ID.endswith(p.__version__)\n"
        "assert metadata.distribution('paramiko').name == 'paramiko'  # the real module, once asked for"
    )
    assert "importlib.metadata" in mods
    # with no METADATA beside the package, paramiko asks the real module, as without smlplay
    _modules_after(
        "from engine.transport import _paramiko\n"
        "_paramiko._installed_version = lambda package: None\n"
        "p = _paramiko.load()\n"
        "import sys\n"
        "assert 'importlib.metadata' in sys.modules and p.__version__"
    )


def test_the_installed_version_is_read_from_the_one_dist_info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.transport._paramiko import _installed_version

    (tmp_path / "fakepkg").mkdir()
    (tmp_path / "fakepkg" / "__init__.py").write_text("")
    info = tmp_path / "fakepkg-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.2.3\n\nVersion: 9 (the body)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _installed_version("fakepkg") == "1.2.3"
    (info / "METADATA").write_text("Name: fakepkg\n\nVersion: 9\n")  # no Version header
    assert _installed_version("fakepkg") is None
    (tmp_path / "fakepkg-1.0.dist-info").mkdir()  # two installs' leftovers: ask the real module
    assert _installed_version("fakepkg") is None
    assert _installed_version("no_such_package_here") is None


def test_a_run_without_allocations_or_http_does_not_import_slurm_or_http() -> None:
    # (the node watch every run starts lives in engine.schedulers, whose names load on use)
    mods = _modules_after("import engine.executor.run, engine.display, engine.cli, engine.schedulers.nodewatch")
    watch = {"engine.schedulers", "engine.schedulers.nodewatch"}
    assert not {m for m in mods - watch if m.startswith(("engine.slurm", "engine.schedulers", "engine.sim"))}
    assert "engine.httpclient" not in mods and "http.client" not in mods


def test_the_scheduler_names_in_the_schema_are_the_schedulers() -> None:
    from engine.schedulers import SCHEDULERS

    assert sorted(SCHEDULER_NAMES) == sorted(SCHEDULERS)


_RUN = """
import sys
from engine.cli import main
try:
    main(["run", {playbook!r}, "-i", {inventory!r}], standalone_mode=False)
except SystemExit as exc:
    assert not exc.code, exc.code
print("jinja2" in sys.modules, file=sys.stderr)
"""


def _run_imports_jinja(tmp_path: Path, tasks: str) -> tuple[bool, str]:
    (tmp_path / "inventory.yaml").write_text("all:\n  hosts:\n    localhost:\n      connection: local\n")
    (tmp_path / "playbook.yaml").write_text(f"- hosts: all\n  tasks:\n{tasks}")
    code = _RUN.format(playbook=str(tmp_path / "playbook.yaml"), inventory=str(tmp_path / "inventory.yaml"))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "SMLPLAY_RUNS_DIR": str(tmp_path / "runs")}, timeout=120,
    )
    return done.stderr.strip().splitlines()[-1] == "True", done.stdout


def test_a_playbook_without_templates_runs_without_jinja(tmp_path: Path) -> None:
    imported, out = _run_imports_jinja(tmp_path, "    - command: echo plain\n    - shell: test -n \"$HOME\"\n")
    assert not imported
    assert "ok=2" in out


def test_the_first_template_brings_jinja_in(tmp_path: Path) -> None:
    tasks = "    - command: echo {{ 6 * 7 }}\n      register: r\n    - assert:\n        that: r.stdout == '42'\n"
    imported, out = _run_imports_jinja(tmp_path, tasks)
    assert imported
    assert "ok=2" in out and "failed=0" in out
