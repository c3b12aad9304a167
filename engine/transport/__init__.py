"""Transports: how commands reach a host (``local``, ``ssh``, ``srun``)."""

from engine.transport.base import (
    BackgroundSpec,
    CommandResult,
    Connection,
    ProcessRecord,
    Transport,
)

__all__ = ["BackgroundSpec", "CommandResult", "Connection", "ProcessRecord", "Transport"]
