"""The compact view's renderer, fed the executor's events with a clock the test moves."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from engine.live import make_sink
from engine.live.lines import Symbols, live_lines, play_line, wait_text
from engine.live.plain import PlainDisplay
from engine.live.state import RunView, Wait


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def events(sink: Any, clock: Clock) -> None:
    """A run as the executor reports it: an allocation wait, a health wait, a skip, a debug
    output, a failure on one of two hosts, teardown and the recap."""
    e = sink.emit
    e("run_start", run_id="r1", run_dir="runs/r1", playbook="p.yaml")
    e("play_start", play="allocate the nodes", hosts=["localhost"], pos="p.yaml:1:3")
    e("task_start", task="allocate : allocate", hosts=["localhost"], action="allocate", handler=False, pos="x")
    e("health_progress", task="allocate : allocate", host="localhost", message="submitted job 7 (2 node(s))")
    e("health_progress", task="allocate : allocate", host="localhost", message="job 7: PENDING, reason Resources, waited 0s")
    clock.now += 40
    e("health_progress", task="allocate : allocate", host="localhost", message="job 7: PENDING, reason Resources, waited 40s")
    e("task_result", task="allocate : allocate", host="localhost", status="changed", ignored=False, result={"msg": "2 node(s)"}, action="allocate")
    e("task_start", task="allocate : not here", hosts=["localhost"], action="command", handler=False, pos="x")
    e("task_result", task="allocate : not here", host="localhost", status="skipped", ignored=False, result={"skipped": True}, action="command")
    e("task_start", task="allocate : show", hosts=["localhost"], action="debug", handler=False, pos="x")
    e("task_result", task="allocate : show", host="localhost", status="ok", ignored=False, result={"msg": "2 node(s): prefill: node1"}, action="debug")
    e("play_start", play="prefill workers", hosts=["node1", "node2"], pos="p.yaml:9:3")
    e("task_start", task="sglang-prefill : start", hosts=["node1", "node2"], action="process", handler=False, pos="x")
    e("health_start", task="sglang-prefill : start", host="node1", probes=["http GET http://n1:30000/health -> 200", "timeout 10m00s, every 1.0s"])
    clock.now += 2
    e("health_progress", task="sglang-prefill : start", host="node1", message="waiting 2.0s / 10m00s: ConnectionRefusedError: [Errno 111] Connection refused")
    clock.now += 33
    e("health_progress", task="sglang-prefill : start", host="node1", message="waiting 35.0s / 10m00s: http 503")
    e("task_result", task="sglang-prefill : start", host="node1", status="changed", ignored=False, result={}, action="process")
    e("task_result", task="sglang-prefill : start", host="node2", status="failed", ignored=False, result={"msg": "boom", "stderr": "trace line 1\ntrace line 2"}, action="process")
    e("teardown_start", entries=2)
    clock.now += 1.5
    e("teardown_step", tier=1, label="stop prefill-0", status="ok", detail="SIGTERM")
    e("teardown_step", tier=3, label="release the allocation (scancel 7)", status="ok", detail="rc 0")
    e("recap", recap={"localhost": {"ok": 2, "changed": 1, "skipped": 1}, "node1": {"ok": 1, "changed": 1}, "node2": {"failed": 1}}, run_dir="runs/r1", status="failed")


def plain_output(**kw: Any) -> str:
    clock = Clock()
    out = io.StringIO()
    events(PlainDisplay(out, clock=clock, **kw), clock)
    return out.getvalue()


def test_plain_view_is_compact_and_complete() -> None:
    text = plain_output()
    assert text.splitlines() == [
        "run r1 (p.yaml) -> runs/r1",
        "  [localhost] submitted job 7 (2 node(s))",
        "  [localhost] allocate : allocate: waiting 40.0s: job 7: PENDING, reason Resources, waited 40s",
        "✓ allocate the nodes         localhost ✓ 40.0s",
        "    2 node(s): prefill: node1",
        "  [node1] sglang-prefill : start: health 35.0s / 10m00s (9m25s left): http 503",
        "fatal: [node2]: FAILED! => boom",
        "  task: sglang-prefill : start",
        "  stderr:",
        "    trace line 1",
        "    trace line 2",
        "✗ prefill workers            node1 ✓ 35.0s  node2 ✗ 35.0s",
        "teardown: 2 steps in 1.5s",
        "  ok: tier 1: stop prefill-0 (SIGTERM)",  # listed: the run failed
        "  ok: tier 3: release the allocation (scancel 7) (rc 0)",
        "PLAY RECAP",
        "localhost : ok=2  changed=1  unreachable=0  failed=0  skipped=1  rescued=0  ignored=0",
        "node1     : ok=1  changed=1  unreachable=0  failed=0  skipped=0  rescued=0  ignored=0",
        "node2     : ok=0  changed=0  unreachable=0  failed=1  skipped=0  rescued=0  ignored=0",
        "run directory: runs/r1  status: failed",
    ]
    assert "skipping" not in text and "\x1b" not in text


def test_plain_progress_lines_are_rate_limited() -> None:
    assert "[node1]" not in plain_output(progress_every=3600)


def test_ascii_stream_gets_words_not_marks() -> None:
    symbols = Symbols.for_encoding("ascii")
    clock = Clock()
    view = RunView(clock=clock)
    view.apply("play_start", {"play": "p", "hosts": ["h"]})
    view.apply("task_result", {"task": "t", "host": "h", "status": "ok"})
    [note] = view.apply("recap", {"recap": {}, "run_dir": "d", "status": "ok"})[:1]
    assert note.play is not None
    assert play_line(note.play, clock(), symbols).encode("ascii").startswith(b"ok p ")


def test_live_region_shows_spinner_hosts_and_countdown() -> None:
    clock = Clock()
    view = RunView(clock=clock)
    view.apply("play_start", {"play": "decode workers", "hosts": ["node1", "node2"]})
    view.apply("task_start", {"task": "sglang-decode : start", "hosts": ["node1", "node2"]})
    view.apply("task_result", {"task": "sglang-decode : start", "host": "node2", "status": "changed"})
    view.apply("health_start", {"task": "sglang-decode : start", "host": "node1", "probes": ["http GET /health -> 200"]})
    clock.now += 12
    view.apply("health_progress", {"task": "t", "host": "node1", "message": "waiting 12.0s / 1h00m: ConnectionRefusedError"})
    first, second = live_lines(view, clock())
    assert re.match(r"^[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] decode workers +node1 [⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] 12\.0s  node2 ✓ 0\.0s  · sglang-decode : start$", first), first
    assert second == "    node1: sglang-decode : start: health 12.0s / 1h00m (59m48s left): ConnectionRefusedError"
    clock.now += 10  # the countdown moves with the clock, not only when a probe reports
    assert "(59m38s left)" in live_lines(view, clock())[1]


def test_many_hosts_are_counted_not_listed() -> None:
    clock = Clock()
    view = RunView(clock=clock)
    hosts = [f"node{i}" for i in range(64)]
    view.apply("play_start", {"play": "telemetry", "hosts": hosts})
    for h in hosts:
        view.apply("task_result", {"task": "t", "host": h, "status": "failed" if h in ("node3", "node9") else "ok"})
    [note] = view.apply("play_start", {"play": "next", "hosts": []})
    assert note.play is not None
    assert play_line(note.play, clock()) == "✗ telemetry                  64 hosts: 62 ✓ 2 ✗ (node3, node9)  max 0.0s"


def test_debug_outputs_differing_per_host_name_the_host() -> None:
    view = RunView(clock=Clock())
    view.apply("play_start", {"play": "p", "hosts": ["a", "b"]})
    for host, msg in (("a", "same"), ("b", "same")):
        view.apply("task_result", {"task": "t", "host": host, "status": "ok", "action": "debug", "result": {"msg": msg}})
    view.apply("task_result", {"task": "u", "host": "a", "status": "ok", "action": "debug", "result": {"msg": "only a"}})
    notes = view.apply("teardown_start", {"entries": 0})
    assert [n.kind for n in notes] == ["play", "output"]
    assert notes[1].text == "    a: same\n    b: same\n    a: only a"


def test_wait_without_deadline_counts_up() -> None:
    assert wait_text(Wait("wait", 0.0, None, "job 3: PENDING"), 75.0) == "waiting 1m15s: job 3: PENDING"


def test_live_display_prints_the_kept_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from engine.live.terminal import LiveDisplay

    buf = io.StringIO()
    clock = Clock()
    display = LiveDisplay(Console(file=buf, force_terminal=True, width=120), clock=clock, refresh_per_second=20)
    events(display, clock)
    display.close()
    kept = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", buf.getvalue())
    for line in ("✓ allocate the nodes         localhost ✓ 40.0s", "fatal: [node2]: FAILED! => boom", "PLAY RECAP", "run directory: runs/r1  status: failed"):
        assert line in kept
    assert "\x1b[?25h" in buf.getvalue()  # the cursor is shown again when the region stops


@pytest.mark.parametrize(
    ("output", "verbosity", "tty", "kind"),
    [
        ("json", 0, True, "JsonDisplay"),
        ("text", 1, True, "TextDisplay"),
        ("text", 0, True, "LiveDisplay"),
        ("text", 0, False, "PlainDisplay"),
    ],
)
def test_make_sink_picks_the_view(output: str, verbosity: int, tty: bool, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    class Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    monkeypatch.delenv("TERM", raising=False)
    assert type(make_sink(output, verbosity, stream=Stream())).__name__ == kind
