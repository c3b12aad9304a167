"""SGLang's torch profiler endpoints, simulated: ``/start_profile`` records the simulated forward
steps, ``/stop_profile`` (or the end of ``num_steps``) writes them as a Chrome trace.

The request body is SGLang's ``ProfileReqInput`` (``output_dir``, ``start_step``, ``num_steps``,
``activities``, ``profile_id``, ...); the file is where SGLang 0.5.9 writes it,
``OUTPUT_DIR/PROFILE_ID-TP-RANK.trace.json.gz`` (``OUTPUT_DIR`` defaults to
``$SGLANG_TORCH_PROFILER_DIR``, else ``/tmp``), in the Chrome trace event format that Perfetto
and ``chrome://tracing`` open. A *step* is one simulated forward pass: a request's prefill, or
one decode token.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: a trace never grows past this many events (a long window at high concurrency)
MAX_EVENTS = 200_000


class ProfileError(Exception):
    """A start or stop that SGLang refuses (HTTP 400 with this message)."""


@dataclass
class ProfileRequest:
    """The fields of SGLang's ``ProfileReqInput`` the simulator acts on."""

    output_dir: Path
    profile_id: str
    start_step: int = 0
    num_steps: int | None = None
    activities: tuple[str, ...] = ("CPU", "GPU")

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ProfileRequest:
        def count(name: str) -> int | None:
            value = body.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ProfileError(f"{name} must be a non-negative integer, not {value!r}")
            return value

        out = body.get("output_dir") or os.environ.get("SGLANG_TORCH_PROFILER_DIR") or "/tmp"
        activities = body.get("activities") or ["CPU", "GPU"]
        if not isinstance(activities, list) or not all(isinstance(a, str) for a in activities):
            raise ProfileError(f"activities must be a list of names, not {activities!r}")
        num_steps = count("num_steps")
        return cls(
            output_dir=Path(str(out)),
            profile_id=str(body.get("profile_id") or f"{time.time():.6f}"),
            start_step=count("start_step") or 0,
            num_steps=num_steps if num_steps else None,
            activities=tuple(activities),
        )


@dataclass
class Profiler:
    """One profiling session at a time, as in SGLang's scheduler."""

    label: str
    tp_rank: int = 0
    request: ProfileRequest | None = None
    skipped: int = 0
    recorded: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    written: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.request is not None

    def start(self, body: dict[str, Any]) -> ProfileRequest:
        if self.request is not None:
            raise ProfileError("Profiling is already in progress. Call /stop_profile first.")
        req = ProfileRequest.from_body(body)
        req.output_dir.mkdir(parents=True, exist_ok=True)  # fail here, not at the end
        self.request, self.skipped, self.recorded, self.events = req, 0, 0, []
        return req

    def step(self, name: str, start: float, end: float, **args: Any) -> None:
        """One simulated forward step from ``start`` to ``end`` (``time.monotonic()``)."""
        req = self.request
        if req is None:
            return
        if self.skipped < req.start_step:
            self.skipped += 1
            return
        if len(self.events) < MAX_EVENTS:
            self.events.append(
                {
                    "name": name,
                    "cat": "sim_forward",
                    "ph": "X",
                    "ts": round(start * 1e6, 3),
                    "dur": round((end - start) * 1e6, 3),
                    "pid": os.getpid(),
                    "tid": self.tp_rank,
                    "args": args,
                }
            )
        self.recorded += 1
        if req.num_steps is not None and self.recorded >= req.num_steps:
            self.stop()

    def stop(self) -> Path:
        """Write the trace; its path. An error when no session is running."""
        req = self.request
        if req is None:
            raise ProfileError("Profiling is not in progress. Call /start_profile first.")
        self.request = None
        path = req.output_dir / f"{req.profile_id}-TP-{self.tp_rank}.trace.json.gz"
        trace = {
            "traceEvents": [
                {"name": "process_name", "ph": "M", "pid": os.getpid(), "args": {"name": self.label}},
                *self.events,
            ],
            "displayTimeUnit": "ms",
            "otherData": {
                "simulator": "engine.sim",
                "profile_id": req.profile_id,
                "activities": list(req.activities),
                "start_step": req.start_step,
                "num_steps": req.num_steps,
                "steps_recorded": self.recorded,
            },
        }
        with gzip.open(path, "wt") as out:
            json.dump(trace, out)
        self.written.append(str(path))
        self.events = []
        return path
