"""playbooks/llama70b.yaml on the embedded default: local scheduler, simulated workers, the
real sglang-router, real bench_serving, real vmagent + VictoriaMetrics, the OpenTela stand-in."""

from __future__ import annotations

from pathlib import Path

from tests.stack.stack import check_live_stack, run_stack, tear_down_and_check


def test_llama70b_pd_on_the_local_scheduler(tmp_path: Path) -> None:
    stack = run_stack(tmp_path)
    try:
        check_live_stack(stack)
    finally:
        tear_down_and_check(stack)
