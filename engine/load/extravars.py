"""``-e @file.yaml``: the file must hold a mapping of variables, reported at file:line."""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from engine.errors import Position, ValidationError
from engine.load.schema import validate
from engine.load.specs import BAD_VAR_NAME
from engine.load.yaml import position_of

#: Names, or dotted paths into one (``layout.decode.workers: 2`` patches one field).
EXTRA_VARS = vol.Schema({vol.Match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$", msg=BAD_VAR_NAME): object})


def check_file_vars(data: Any, path: str, raw: str) -> dict[str, Any]:
    """The variables of an ``-e @file``; an empty file is no variables."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = "list" if isinstance(data, list) else type(data).__name__.replace("YStr", "str")
        raise ValidationError(
            f"-e {raw}: the file must hold a mapping of variable names to values, got {kind}",
            pos=position_of(data) or Position(path, 1, 1),
            hint="write one 'name: value' per line",
        )
    validate(EXTRA_VARS, data, what=f"-e {raw}")
    return data


def check_inline_vars(data: dict[str, Any], raw: str) -> dict[str, Any]:
    """The variables of ``-e k=v`` or ``-e '{"json": 1}'``: names checked like a file's."""
    validate(EXTRA_VARS, data, what=f"-e {raw}")
    return data
