"""Long waits: an allocation's progress line (reason, deadline, Slurm's ETA) and its countdown."""

from __future__ import annotations

from engine.live.lines import live_lines
from engine.live.state import RunView
from engine.schedulers.slurm import _progress_line
from engine.slurm.jobs import JobInfo


def job(state: str, reason: str, start: int | None) -> JobInfo:
    return JobInfo(job_id="7", name="smlplay", state=state, reason=reason, nodes=(), node_count=2, start_time=start)


def test_pending_job_line_has_reason_deadline_and_eta() -> None:
    line = _progress_line(job("PENDING", "Resources", 1_000_130), 40.2, 300.0, now=1_000_000.0)
    assert line == "job 7: PENDING, reason Resources, waited 40s of 5m00s, Slurm expects a start in 2m10s"


def test_no_eta_without_an_estimate_or_once_running() -> None:
    assert _progress_line(job("PENDING", "Priority", None), 3, 60, now=10.0) == "job 7: PENDING, reason Priority, waited 3s of 1m00s"
    assert _progress_line(job("RUNNING", "None", 5), 9, None, now=10.0) == "job 7: RUNNING, waited 9s"


class Clock:
    now = 50.0

    def __call__(self) -> float:
        return self.now


def test_allocation_wait_counts_down_to_its_deadline() -> None:
    clock = Clock()
    view = RunView(clock=clock)
    view.apply("play_start", {"play": "allocate the nodes", "hosts": ["login"]})
    view.apply("task_start", {"task": "allocate : allocate", "hosts": ["login"]})
    view.apply("health_progress", {"task": "t", "host": "login", "message": "submitted job 7 (2 node(s))"})
    clock.now += 40
    message = _progress_line(job("PENDING", "Resources", 1_000_130), 40, 300.0, now=1_000_000.0)
    view.apply("health_progress", {"task": "t", "host": "login", "message": message})
    assert live_lines(view, clock())[1] == (
        "    login: allocate : allocate: waiting 40.0s / 5m00s (4m20s left): "
        "job 7: PENDING, reason Resources, Slurm expects a start in 2m10s"
    )
