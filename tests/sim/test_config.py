"""The simulator's command line: SGLang flag names, aliases, and reporting of unknown flags."""

from __future__ import annotations

import pytest

from engine.sim.config import SimConfig


def test_defaults_follow_sglang() -> None:
    cfg = SimConfig.from_argv(["--model-path", "/models/llama"])
    assert cfg.served_model_name == "/models/llama"  # SGLang serves the path when unnamed
    assert cfg.host == "127.0.0.1" and cfg.port == 30000
    assert cfg.disaggregation_mode == "null"
    assert cfg.disaggregation_bootstrap_port == 8998
    assert cfg.unknown_args == () and cfg.ignored_args == ()


def test_modelled_flags_and_aliases() -> None:
    cfg = SimConfig.from_argv(
        [
            "--model-path",
            "m",
            "--served-model-name",
            "name",
            "--tensor-parallel-size",
            "8",
            "--dp-size",
            "2",
            "--ep-size",
            "8",
            "--disaggregation-mode",
            "prefill",
            "--disaggregation-bootstrap-port",
            "9001",
            "--disaggregation-transfer-backend",
            "nixl",
            "--disaggregation-ib-device",
            "mlx5_0,mlx5_1",
            "--dist-init-addr",
            "10.0.0.1:5000",
            "--nnodes",
            "2",
            "--node-rank",
            "1",
            "--nccl-port",
            "5100",
            "--mem-fraction-static",
            "0.8",
            "--trust-remote-code",
            "--max-running-requests",
            "7",
            "--context-length",
            "4096",
            "--log-level",
            "warning",
        ]
    )
    assert (cfg.tp_size, cfg.dp_size, cfg.ep_size) == (8, 2, 8)
    assert cfg.disaggregation_mode == "prefill"
    assert cfg.disaggregation_bootstrap_port == 9001
    assert cfg.disaggregation_transfer_backend == "nixl"
    assert cfg.disaggregation_ib_device == "mlx5_0,mlx5_1"
    assert (cfg.dist_init_addr, cfg.nnodes, cfg.node_rank, cfg.nccl_port) == (
        "10.0.0.1:5000",
        2,
        1,
        5100,
    )
    assert cfg.mem_fraction_static == 0.8 and cfg.trust_remote_code
    assert cfg.max_running_requests == 7 and cfg.context_length == 4096
    assert cfg.is_follower
    info = cfg.server_args()
    assert info["tp_size"] == 8 and info["disaggregation_mode"] == "prefill"
    assert info["served_model_name"] == "name"


def test_real_sglang_flags_are_accepted_unknown_ones_reported() -> None:
    cfg = SimConfig.from_argv(
        [
            "--model-path",
            "m",
            "--attention-backend",
            "fa3",
            "--enable-torch-compile",
            "--cuda-graph-bs",
            "1",
            "2",
            "4",
            "--tp-szie",
            "2",
            "--frobnicate",
            "--port",
            "1234",
            "--chunked-prefill-size=4096",
            "stray",
        ]
    )
    assert cfg.port == 1234
    assert cfg.ignored_args == (
        "--attention-backend fa3",
        "--enable-torch-compile",
        "--cuda-graph-bs 1 2 4",
        "--chunked-prefill-size=4096",
    )
    assert cfg.unknown_args == ("--tp-szie 2", "--frobnicate", "stray")


def test_no_abbreviations() -> None:
    """argparse would read ``--tp 2`` as ``--tp-size 2``; SGLang users must see the typo."""
    cfg = SimConfig.from_argv(["--tp", "2"])
    assert cfg.tp_size == 1
    assert cfg.unknown_args == ("--tp 2",)


def test_sim_flags_win_over_sglang_equivalents() -> None:
    cfg = SimConfig.from_argv(
        [
            "--max-running-requests",
            "100",
            "--sim-max-running-requests",
            "3",
            "--random-seed",
            "5",
            "--sim-seed",
            "9",
            "--sim-startup-delay",
            "1.5",
            "--sim-ttft-per-token-ms",
            "0.5",
            "--sim-tpot-ms",
            "7",
            "--sim-max-lifetime",
            "60",
        ]
    )
    assert cfg.max_running_requests == 3 and cfg.seed == 9
    assert cfg.latency.startup_delay_s == 1.5 and cfg.max_lifetime_s == 60
    assert cfg.latency.ttft_s(100) == pytest.approx((2.0 + 50) / 1000)
    assert cfg.latency.tpot_s == pytest.approx(0.007)
    assert SimConfig.from_argv(["--random-seed", "5"]).seed == 5


def test_bad_value_of_a_modelled_flag_is_fatal() -> None:
    with pytest.raises(SystemExit):
        SimConfig.from_argv(["--disaggregation-mode", "both"])
