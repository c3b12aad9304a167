"""Profiling the workers of a deployment: the ``profile:`` variable, per worker group.

::

    profile:
      decode:                       # a worker group: prefill, decode or workers
        type: torch                 # torch: the worker's /start_profile and /stop_profile
        workers: [0]                # which of the group's workers (default: all)
        steps: {start: 5, count: 20}   # skip 5 forward steps, record 20 ...
        # window: {delay: 2s, duration: 10s}   # ... or a time window of the measured run
        concurrencies: [32]         # which measured benchmark runs (default: every one)
      prefill:
        type: nsys                  # nsys: the launch command wrapped in `nsys profile`
        window: {delay: 60s, duration: 30s}    # nsys --delay/--duration, from the launch
        # steps: {...}              # nsys --capture-range=cudaProfilerApi, started and
                                    # stopped by SGLang's profiler (activities CUDA_PROFILER)

Traces land in ``RUN_DIR/profiles/<worker>/`` (torch: one directory per measured run,
``c<concurrency>``); the run directory is on a filesystem the nodes share (their logs are
there too). These functions are exposed as filters in :mod:`engine.filters`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import ValidationError
from engine.units import parse_duration

__all__ = ["ProfileSpec", "nsys_prefix", "profile_plan", "profile_summary", "profile_targets"]

GROUPS = ("prefill", "decode", "workers")
FIELDS = ("type", "workers", "steps", "window", "concurrencies", "activities", "nsys_args")


@dataclass(frozen=True)
class ProfileSpec:
    """How one worker group is profiled."""

    group: str
    type: str  # torch | nsys
    workers: tuple[int, ...] | None  # None: all
    start_step: int | None
    num_steps: int | None
    delay_s: float | None
    duration_s: float | None
    concurrencies: tuple[int, ...] | None
    activities: tuple[str, ...]
    nsys_args: tuple[str, ...]

    @property
    def by_steps(self) -> bool:
        return self.num_steps is not None

    @classmethod
    def from_vars(cls, group: str, spec: Any) -> ProfileSpec:
        where = f"profile.{group}"
        if group not in GROUPS:
            raise ValidationError(f"profile: {group!r} is not a worker group", hint=f"profile one of: {', '.join(GROUPS)}")
        if not isinstance(spec, Mapping):
            raise ValidationError(f"{where} must be a mapping like {{type: torch, steps: {{start: 0, count: 20}}}}, not {spec!r}")
        unknown = sorted(set(spec) - set(FIELDS))
        if unknown:
            raise ValidationError(f"{where}: unknown field(s) {', '.join(unknown)}", hint=f"known: {', '.join(FIELDS)}")
        kind = spec.get("type", "torch")
        if kind not in ("torch", "nsys"):
            raise ValidationError(f"{where}.type is torch or nsys, not {kind!r}")
        if ("steps" in spec) == ("window" in spec):
            raise ValidationError(
                f"{where}: give exactly one of steps or window",
                hint="steps: {start: 0, count: 20} (forward steps) or window: {delay: 0s, duration: 10s}",
            )
        start = count = None
        delay = duration = None
        if "steps" in spec:
            steps = _mapping(f"{where}.steps", spec["steps"], ("start", "count"))
            start = _int(f"{where}.steps.start", steps.get("start", 0), minimum=0)
            count = _int(f"{where}.steps.count", steps.get("count"), minimum=1)
        else:
            window = _mapping(f"{where}.window", spec["window"], ("delay", "duration"))
            delay = parse_duration(window.get("delay", 0), what=f"{where}.window.delay")
            if window.get("duration") is None:
                raise ValidationError(f"{where}.window.duration is required (e.g. 30s)")
            duration = parse_duration(window["duration"], what=f"{where}.window.duration")
            if duration <= 0:
                raise ValidationError(f"{where}.window.duration must be positive")
        return cls(
            group=group,
            type=kind,
            workers=_indices(f"{where}.workers", spec.get("workers", "all")),
            start_step=start,
            num_steps=count,
            delay_s=delay,
            duration_s=duration,
            concurrencies=_indices(f"{where}.concurrencies", spec.get("concurrencies"), minimum=1),
            activities=tuple(_strings(f"{where}.activities", spec.get("activities", ["CPU", "GPU"]))),
            nsys_args=tuple(_strings(f"{where}.nsys_args", spec.get("nsys_args", []))),
        )

    def profiles(self, index: int) -> bool:
        return self.workers is None or index in self.workers

    def at(self, concurrency: int) -> bool:
        return self.concurrencies is None or concurrency in self.concurrencies


def profile_plan(profile: Any) -> dict[str, ProfileSpec]:
    """``profile`` checked: group -> spec (``{}`` or ``None``: nothing is profiled)."""
    if profile is None or profile is False or profile == {}:
        return {}
    if not isinstance(profile, Mapping):
        raise ValidationError(f"profile must be a mapping of worker groups, not {profile!r}", hint="profile: {decode: {type: torch, steps: {count: 20}}}")
    return {group: ProfileSpec.from_vars(str(group), spec) for group, spec in profile.items()}


def profile_summary(profile: Any, directory: str) -> list[dict[str, Any]]:
    """What is profiled, for the run record (``profiles/profile.json``); checks ``profile``."""
    return [
        {
            "group": spec.group,
            "type": spec.type,
            "workers": "all" if spec.workers is None else list(spec.workers),
            "steps": {"start": spec.start_step, "count": spec.num_steps} if spec.by_steps else None,
            "window": None if spec.by_steps else {"delay_s": spec.delay_s, "duration_s": spec.duration_s},
            "concurrencies": "all" if spec.concurrencies is None else list(spec.concurrencies),
            "output_dir": directory,
        }
        for spec in profile_plan(profile).values()
    ]


def profile_targets(profile: Any, hostvars: Any, groups: Mapping[str, Sequence[str]], directory: str, concurrency: int) -> list[dict[str, Any]]:
    """The workers to call ``/start_profile`` on around the measured run at ``concurrency``,
    with the request body: torch workers, and nsys workers in steps mode (SGLang's profiler
    with activity ``CUDA_PROFILER`` opens and closes nsys's capture range)."""
    from engine.serving.placement import worker_endpoints

    out = []
    for group, spec in profile_plan(profile).items():
        if not spec.at(concurrency) or (spec.type == "nsys" and not spec.by_steps):
            continue
        if not groups.get(group):
            raise ValidationError(f"profile.{group}: this deployment has no {group} workers")
        workers = hostvars[groups[group][0]].get("serving_workers") or []
        for endpoint in worker_endpoints([w for w in workers if spec.profiles(int(w["index"]))], hostvars):
            output = f"{directory}/{endpoint['name']}" + (f"/c{concurrency}" if spec.type == "torch" else "")
            body: dict[str, Any] = {"output_dir": output, "profile_id": f"{endpoint['name']}-c{concurrency}"}
            body["activities"] = ["CUDA_PROFILER"] if spec.type == "nsys" else list(spec.activities)
            if spec.by_steps:
                body.update(start_step=spec.start_step, num_steps=spec.num_steps)
            out.append(
                {
                    "name": endpoint["name"],
                    "url": endpoint["url"],
                    "type": spec.type,
                    "output_dir": output,
                    "body": body,
                    "delay": spec.delay_s,
                    "duration": spec.duration_s,
                }
            )
    return out


def nsys_prefix(profile: Any, group: str, worker: Mapping[str, Any], directory: str) -> str:
    """``nsys profile ... `` to put before a worker rank's launch command (``''`` when the
    worker is not nsys-profiled): a capture range opened by SGLang's profiler (steps) or
    ``--delay/--duration`` from the launch (window)."""
    spec = profile_plan(profile).get(group)
    if spec is None or spec.type != "nsys" or not spec.profiles(int(worker["index"])):
        return ""
    output = f"{directory}/{worker['name']}/{worker['name']}-r{worker.get('rank', 0)}"
    argv = ["nsys", "profile", "--output", output, "--force-overwrite", "true", "--trace", "cuda,nvtx,osrt"]
    if spec.by_steps:
        argv += ["--capture-range", "cudaProfilerApi", "--capture-range-end", "stop"]
    else:
        argv += ["--delay", f"{spec.delay_s:g}", "--duration", f"{spec.duration_s:g}"]
    return shlex.join([*argv, *spec.nsys_args]) + " "


def _mapping(what: str, value: Any, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{what} must be a mapping with {' and '.join(keys)}, not {value!r}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise ValidationError(f"{what}: unknown field(s) {', '.join(unknown)}", hint=f"known: {', '.join(keys)}")
    return value


def _int(what: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"{what} must be an integer >= {minimum}, not {value!r}")
    return value


def _indices(what: str, value: Any, minimum: int = 0) -> tuple[int, ...] | None:
    if value is None or value == "all":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ValidationError(f"{what} must be all or a list of integers, not {value!r}")
    return tuple(_int(what, v, minimum) for v in value)


def _strings(what: str, value: Any) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"{what} must be a list of strings, not {value!r}")
    return list(value)
