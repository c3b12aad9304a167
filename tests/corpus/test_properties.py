"""Property tests: no input, however malformed, reaches an internal error.

Random YAML documents, and random mutations of the shipped playbooks, vars files, roles and
inventories (delete a key, rename one, change a value's type, insert a key or garbage text),
go through ``smlplay check`` and ``smlplay run --dry-run`` in-process (click's CliRunner):
the exit code is 0 or 2, never a traceback or an internal error (3), an exit 2 names a
``file:line:col``, and nothing is written anywhere (no run record, no new file).

The CI budget is fixed (284 examples, about 45 s of CPU on two cores: the role mutations
are the dearest, ~0.5 s each, as their playbook has 68 steps);
``SMLPLAY_FUZZ_SCALE=20`` multiplies it for a long local run, with a fresh random seed
(CI runs derandomized, so it always checks the same examples).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main
from tests.corpus.fuzz import LOCATION, documents, mutated

ROOT = Path(__file__).resolve().parents[2]
SCALE = max(1, int(os.environ.get("SMLPLAY_FUZZ_SCALE", "1")))
COUNTS: dict[str, int] = {}


def budget(examples: int) -> settings:
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        database=None,
        derandomize=SCALE == 1,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@dataclass
class Sandbox:
    """A copy of the shipped playbooks, roles and inventories, the working directory."""

    root: Path
    runs: Path
    files: set[Path] = field(default_factory=set)

    def listing(self) -> set[Path]:
        return {p for p in self.root.rglob("*") if p.is_file()}

    def invoke(self, argv: list[str], label: str) -> None:
        """Run one command; assert the contract of an input error, or success."""
        result = CliRunner().invoke(main, argv, env={"SMLPLAY_RUNS_DIR": str(self.runs), "SMLPLAY_ROLES_PATH": "", "NO_COLOR": "1", "COLUMNS": "200"})
        out = result.output + (result.stderr if result.stderr_bytes is not None else "")
        report = f"smlplay {' '.join(argv)}: exit {result.exit_code}\n{out}"
        COUNTS[f"{label} exit {result.exit_code}"] = COUNTS.get(f"{label} exit {result.exit_code}", 0) + 1
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{report}\nraised {type(result.exception).__name__}: {result.exception}") from result.exception
        assert "Traceback" not in out, report
        assert "internal error" not in out, report
        assert result.exit_code in (0, 2), report
        if result.exit_code == 2:
            assert LOCATION.search(out), f"no file:line:col\n{report}"
        assert not self.runs.exists() or not any(p.is_file() for p in self.runs.rglob("*")), report
        assert self.listing() == self.files, f"files written: {sorted(map(str, self.listing() ^ self.files))}\n{report}"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    base = tmp_path_factory.mktemp("fuzz")
    root = base / "project"
    for name in ("playbooks", "roles", "inventory"):
        shutil.copytree(ROOT / name, root / name)
    box = Sandbox(root=root, runs=base / "runs")
    box.files = box.listing()
    old = Path.cwd()
    os.chdir(root)  # roles are found in ./roles: the copies, not the originals
    try:
        yield box
    finally:
        os.chdir(old)


def _playbook_for(target: str) -> str:
    """The playbook that reads a given shipped file."""
    if target.startswith("playbooks/vars/"):
        return "playbooks/" + Path(target).name
    if target.startswith("playbooks/"):
        return target
    if target.startswith("roles/serving-worker/"):
        return "playbooks/llama70b-aggregated.yaml"
    return "playbooks/llama70b.yaml"


PLAYBOOKS = ["playbooks/demo-service.yaml", "playbooks/llama70b.yaml", "playbooks/llama70b-aggregated.yaml", "playbooks/vars/llama70b.yaml"]
ROLE_FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "roles").rglob("*.yml") if "examples" not in p.parts)
INVENTORIES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "inventory").glob("*.yaml"))
COMMANDS = st.sampled_from([["check"], ["run", "--dry-run"]])


def _mutate_and_run(sandbox: Sandbox, target: str, data: st.DataObject, command: list[str], argv_tail: list[str], label: str) -> None:
    path = sandbox.root / target
    original = path.read_text(encoding="utf-8")
    what, text = data.draw(mutated(original), label="mutation")
    path.write_text(text, encoding="utf-8")
    try:
        sandbox.invoke([*command, *argv_tail], f"{label} ({command[0]})")
    except AssertionError as exc:
        raise AssertionError(f"{target}: {what}\n{exc}") from None
    finally:
        path.write_text(original, encoding="utf-8")


@budget(60)
@given(data=st.data(), target=st.sampled_from(PLAYBOOKS), command=COMMANDS)
def test_mutated_playbooks(sandbox: Sandbox, data: st.DataObject, target: str, command: list[str]) -> None:
    _mutate_and_run(sandbox, target, data, command, [_playbook_for(target), "-i", "inventory/local.yaml"], "playbook mutations")


@budget(30)  # the role playbooks are the biggest to check (~0.6 s an example)
@given(data=st.data(), target=st.sampled_from(ROLE_FILES), command=COMMANDS)
def test_mutated_roles(sandbox: Sandbox, data: st.DataObject, target: str, command: list[str]) -> None:
    _mutate_and_run(sandbox, target, data, command, [_playbook_for(target), "-i", "inventory/local.yaml"], "role mutations")


@budget(40)
@given(data=st.data(), target=st.sampled_from(INVENTORIES), command=COMMANDS)
def test_mutated_inventories(sandbox: Sandbox, data: st.DataObject, target: str, command: list[str]) -> None:
    _mutate_and_run(sandbox, target, data, command, ["playbooks/demo-service.yaml", "-i", target], "inventory mutations")


@budget(150)
@given(text=documents(), command=COMMANDS, where=st.sampled_from(["playbook", "inventory", "extra vars"]))
def test_random_documents(sandbox: Sandbox, text: str, command: list[str], where: str) -> None:
    path = sandbox.root / "random.yaml"
    path.write_text(text, encoding="utf-8")
    sandbox.files.add(path)
    argv = {
        "playbook": [*command, "random.yaml"],
        "inventory": [*command, "playbooks/demo-service.yaml", "-i", "random.yaml"],
        "extra vars": [*command, "playbooks/demo-service.yaml", "-e", "@random.yaml"],
    }[where]
    try:
        sandbox.invoke(argv, f"random documents as {where}")
    except AssertionError as exc:
        raise AssertionError(f"document:\n{text}\n{exc}") from None


@budget(4)
@given(data=st.data(), target=st.sampled_from(PLAYBOOKS))
def test_mutations_through_the_real_cli(sandbox: Sandbox, data: st.DataObject, target: str) -> None:
    """A few mutated playbooks through a real ``smlplay`` process: exit, stderr, no trace."""
    path = sandbox.root / target
    original = path.read_text(encoding="utf-8")
    what, text = data.draw(mutated(original), label="mutation")
    path.write_text(text, encoding="utf-8")
    COUNTS["subprocess"] = COUNTS.get("subprocess", 0) + 1
    try:
        script = Path(sys.executable).with_name("smlplay")
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "engine"]
        proc = subprocess.run(
            [*cmd, "check", _playbook_for(target), "-i", "inventory/local.yaml"],
            cwd=sandbox.root, capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "SMLPLAY_RUNS_DIR": str(sandbox.runs), "SMLPLAY_ROLES_PATH": "", "NO_COLOR": "1"},
        )
    finally:
        path.write_text(original, encoding="utf-8")
    report = f"{target}: {what}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.returncode in (0, 2), report
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, report
    if proc.returncode == 2:
        assert LOCATION.search(proc.stderr), report


def test_zz_report_example_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """Print how many examples ran (pytest -s shows it; the lead's report quotes it)."""
    with capsys.disabled():
        total = sum(COUNTS.values())
        print(f"\nproperty examples: {total} " + ", ".join(f"{k}: {v}" for k, v in sorted(COUNTS.items())))
