"""A simulated SGLang-compatible server, so the serving roles can run end to end on a CPU.

It speaks SGLang 0.5.9's HTTP surface (native ``/generate``, OpenAI endpoints, info, health and
metrics routes), accepts its ``launch_server`` flags, simulates latency (start-up delay, TTFT,
TPOT, a bounded number of running requests) and emits deterministic words ``w<id>`` so token
counts are exact with the word-level tokenizer of :mod:`engine.sim.tokenizer`. In P/D
disaggregation a decode server really fetches each request's "KV" from the prefill's bootstrap
server, so wrong bootstrap wiring fails here as it would on a cluster.

Run it with ``python -m engine.sim --model-path M --port P [--disaggregation-mode prefill|decode]
[--sim-* knobs]``. Only configuration is re-exported here: importing the package must stay cheap
(the server modules import aiohttp; the tokenizer builder imports ``tokenizers`` lazily).
"""

from engine.sim.config import LatencyConfig, SimConfig

__all__ = ["LatencyConfig", "SimConfig"]
