"""The differential suite's shared parts: cases, how an outcome is observed and compared.

A case is ``cases/NAME.yml`` or ``cases/NAME/playbook.yml`` (with roles and files beside
it). It writes what it saw to the file named by the extra variable ``obs``. A first line
``# args: ...`` gives more command-line arguments (tags, ``-e``, ``--start-at-task``), the
same for both engines. An outcome is the exit class, the observation file and the recap.
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
EXPECTED = HERE / "expected"
DEVIATIONS = HERE / "deviations.yaml"
COUNTERS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")


@dataclass(frozen=True)
class Case:
    name: str
    playbook: Path  # relative to the case's directory once staged
    source: Path  # the file or directory in cases/

    @property
    def args(self) -> list[str]:
        first = self.playbook_text.splitlines()[0] if self.playbook_text else ""
        return shlex.split(first.removeprefix("# args:")) if first.startswith("# args:") else []

    @property
    def playbook_text(self) -> str:
        return (self.source / "playbook.yml" if self.source.is_dir() else self.source).read_text()

    def stage(self, into: Path) -> tuple[Path, Path]:
        """Copy the case into a scratch directory; return (playbook, observation path)."""
        into.mkdir(parents=True, exist_ok=True)
        if self.source.is_dir():
            shutil.copytree(self.source, into, dirs_exist_ok=True)
            playbook = into / "playbook.yml"
        else:
            playbook = into / self.source.name
            shutil.copy(self.source, playbook)
        return playbook, into / "obs"


def cases() -> list[Case]:
    found = [Case(p.stem, Path(p.name), p) for p in CASES.glob("*.yml")]
    found += [Case(p.name, Path("playbook.yml"), p) for p in CASES.iterdir() if (p / "playbook.yml").is_file()]
    return sorted(found, key=lambda c: c.name)


@dataclass(frozen=True)
class Outcome:
    exit: str  # ok | failed | error (bad input, nothing ran) | other:<rc>
    observation: str | None
    recap: dict[str, int] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(str(data["exit"]), data.get("observation"), data.get("recap"))


def read_observation(path: Path) -> str | None:
    # Only the file's final newlines are dropped: whether `copy: content` keeps one is a
    # Jinja detail both engines are free in; every other byte counts.
    return path.read_text(errors="replace").rstrip("\n") if path.exists() else None


def full_recap(counts: dict[str, int] | None) -> dict[str, int] | None:
    if counts is None:
        return None
    return {k: int(counts.get(k, 0)) for k in COUNTERS}


_ANSIBLE_RECAP = re.compile(r"^localhost\s*:\s*(.*)$", re.M)


def ansible_recap(stdout: str) -> dict[str, int] | None:
    tail = stdout.split("PLAY RECAP", 1)
    if len(tail) < 2 or not (m := _ANSIBLE_RECAP.search(tail[1])):
        return None
    return full_recap({k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(1))})


def ansible_exit(rc: int) -> str:
    # ansible-playbook: 0 ok, 2 a host failed, 4 parse error, 1/5 other errors
    return {0: "ok", 2: "failed", 1: "error", 4: "error", 5: "error"}.get(rc, f"other:{rc}")


def smlplay_exit(rc: int) -> str:
    return {0: "ok", 1: "failed", 2: "error"}.get(rc, f"other:{rc}")
