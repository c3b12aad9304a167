"""``python -m engine.sim``: parse an SGLang-style command line and run the simulated server."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from engine.sim.config import SimConfig

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server; the exit code (0 after a signal or ``--sim-max-lifetime``)."""
    config = SimConfig.from_argv(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=_LEVELS.get(config.log_level.lower(), logging.INFO),
        format="[%(asctime)s] %(message)s",
        stream=sys.stderr,
    )
    report_args(config)
    from engine.sim.server import SimServer  # aiohttp is imported only when serving

    return asyncio.run(SimServer(config).run())


def report_args(config: SimConfig) -> None:
    """Say which flags were not acted on. Unknown ones always reach stderr, whatever the log level."""
    if config.unknown_args:
        print(
            "sim: WARNING: unknown flags (not SGLang 0.5.9 launch_server flags), ignored: "
            + ", ".join(config.unknown_args),
            file=sys.stderr,
            flush=True,
        )
    if config.ignored_args:
        logging.getLogger("engine.sim").info(
            "sim: SGLang flags accepted without simulated effect: %s",
            ", ".join(config.ignored_args),
        )
    logging.getLogger("engine.sim").info(
        "sim: mode=%s model=%s served as %s on %s:%d (tp=%d dp=%d ep=%d nnodes=%d rank=%d)",
        config.disaggregation_mode,
        config.model_path,
        config.served_model_name,
        config.host,
        config.port,
        config.tp_size,
        config.dp_size,
        config.ep_size,
        config.nnodes,
        config.node_rank,
    )
