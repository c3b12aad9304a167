"""Admission control: at most ``max_running`` requests generate at once, the rest queue.

This is what makes the simulator's ``sglang:num_queue_reqs`` and latency under load behave like
a real server's (TTFT grows once concurrency exceeds ``--max-running-requests``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Scheduler:
    """A counting semaphore that also reports how many requests run and how many wait."""

    def __init__(self, max_running: int) -> None:
        self.max_running = max_running
        self._slots = asyncio.Semaphore(max_running)
        self.running = 0
        self.queued = 0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Wait for a free slot (counted as queued meanwhile) and hold it for the block."""
        self.queued += 1
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()
