"""One check's outcome and the report of them all (text for people, JSON for tools)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["ok", "fail", "warn", "skip"]


@dataclass(frozen=True)
class Check:
    """``name`` is the kind of check (``partition``, ``gpus``, ``ports``...); a failure
    always says how to fix it (``remedy``)."""

    name: str
    status: Status
    message: str
    remedy: str = ""
    host: str | None = None

    @classmethod
    def ok(cls, name: str, message: str, *, host: str | None = None) -> Check:
        return cls(name, "ok", message, host=host)

    @classmethod
    def fail(cls, name: str, message: str, remedy: str, *, host: str | None = None) -> Check:
        return cls(name, "fail", message, remedy, host)

    @classmethod
    def warn(cls, name: str, message: str, remedy: str = "", *, host: str | None = None) -> Check:
        return cls(name, "warn", message, remedy, host)

    @classmethod
    def skip(cls, name: str, message: str, *, host: str | None = None) -> Check:
        return cls(name, "skip", message, host=host)


@dataclass(frozen=True)
class Report:
    playbook: str
    inventory: str | None
    checks: tuple[Check, ...] = field(default_factory=tuple)
    strict: bool = False

    @classmethod
    def of(cls, playbook: str, inventory: str | None, checks: Iterable[Check], *, strict: bool = False) -> Report:
        return cls(playbook, inventory, tuple(checks), strict)

    @property
    def failed(self) -> list[Check]:
        bad = ("fail", "warn") if self.strict else ("fail",)
        return [c for c in self.checks if c.status in bad]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "inventory": self.inventory,
            "ok": self.ok,
            "failed": len(self.failed),
            "checks": [{k: v for k, v in asdict(c).items() if v not in (None, "")} for c in self.checks],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        lines = []
        for c in self.checks:
            where = f" [{c.host}]" if c.host else ""
            lines.append(f"{c.status:<4}  {c.name:<9}{where} {c.message}")
            if c.remedy and c.status in ("fail", "warn"):
                lines.append(f"      -> {c.remedy}")
        counts = {s: sum(1 for c in self.checks if c.status == s) for s in ("ok", "fail", "warn", "skip")}
        verdict = "preflight passed" if self.ok else f"preflight FAILED ({len(self.failed)} check(s))"
        lines.append(f"{verdict}: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
        return "\n".join(lines)
