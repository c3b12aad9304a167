"""Actions, one module per family; importing this package registers all of them."""

from engine.actions import allocate, commands, control, files, processes, waits
from engine.actions.base import REGISTRY, Action, ActionContext, Result, action, get

__all__ = ["REGISTRY", "Action", "ActionContext", "Result", "action", "allocate", "commands", "control", "files", "get", "processes", "waits"]
