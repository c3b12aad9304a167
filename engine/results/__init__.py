"""Benchmark results in one normalised schema, whatever tool produced them.

``schema`` holds the frozen dataclasses, ``parsers`` one parser per tool (registered by
name), ``load`` reads run and sweep records into them; ``compare``, ``plots`` and
``html`` turn them into tables, figures and a self-contained page (``smlplay report``).
"""

from engine.results.schema import Deployment, Latency, Point, RunResult

__all__ = ["Deployment", "Latency", "Point", "RunResult"]
