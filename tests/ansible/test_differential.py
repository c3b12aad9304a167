"""smlplay against the recorded real ansible-playbook, case by case.

Each case in ``cases/`` was run under ansible-core (``record.py``); here the same playbook
runs under ``smlplay run`` in-process, and its exit class, observation file and recap must
equal the recording, or the documented deviation in ``deviations.yaml`` (whose recorded
Ansible outcome must still differ, so a stale deviation fails too).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from engine.cli import main
from tests.ansible.harness import (
    DEVIATIONS,
    EXPECTED,
    Case,
    Outcome,
    cases,
    full_recap,
    read_observation,
    smlplay_exit,
)

CASES = cases()
#: Differences not fixed yet (issue #10): strict xfail, so a fixed case must leave the list.
KNOWN_GAPS = set((Path(__file__).parent / "known_gaps.txt").read_text().split())
DEVIATED: dict[str, dict[str, Any]] = yaml.safe_load(DEVIATIONS.read_text()) or {} if DEVIATIONS.exists() else {}


def run_smlplay(case: Case, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Outcome:
    playbook, obs = case.stage(tmp / "case")
    monkeypatch.chdir(tmp / "case")
    monkeypatch.setenv("SMLPLAY_RUNS_DIR", str(tmp / "runs"))
    result = CliRunner().invoke(main, ["run", str(playbook), "-e", f"obs={obs}", "--output", "json", *case.args], catch_exceptions=False)
    recap = None
    for line in result.output.splitlines():
        if line.startswith("{") and '"event": "recap"' in line:
            recap = full_recap(json.loads(line)["recap"].get("localhost", {}))
    return Outcome(smlplay_exit(result.exit_code), read_observation(obs), recap)


def expected_for(case: Case) -> tuple[Outcome, Outcome | None]:
    """(what smlplay must do, what Ansible did where that differs on purpose)."""
    recorded = Outcome.from_dict(json.loads((EXPECTED / f"{case.name}.json").read_text()))
    deviation = DEVIATED.get(case.name)
    if deviation is None:
        return recorded, None
    ours = Outcome.from_dict({**recorded.to_dict(), **deviation["smlplay"]})
    return ours, recorded


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    if case.name in KNOWN_GAPS:
        request.applymarker(pytest.mark.xfail(reason="known gap, tests/ansible/known_gaps.txt", strict=True))
    want, ansible = expected_for(case)
    got = run_smlplay(case, tmp_path, monkeypatch)
    assert got == want
    if ansible is not None:
        assert ansible != want, f"deviation '{case.name}' is stale: ansible now agrees"


def test_every_case_recorded() -> None:
    missing = [c.name for c in CASES if not (EXPECTED / f"{c.name}.json").exists()]
    assert not missing, f"run tests/ansible/record.py for: {missing}"
    assert len(CASES) >= 80


def test_deviations_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "ansible-differences.md").read_text()
    for name, entry in DEVIATED.items():
        assert name in {c.name for c in CASES}, f"deviation for unknown case {name}"
        assert entry.get("why"), f"deviation {name} says no why"
        assert f"`{name}`" in doc, f"docs/ansible-differences.md does not list {name}"
