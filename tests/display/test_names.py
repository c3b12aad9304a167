"""Task names render without ``None`` (engine.names, used for every TASK line and plan step)."""

from __future__ import annotations

import pytest

from engine.names import render_name, tidy_name
from engine.template import Templar


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("the image exists ({{ image }})", "the image exists"),
        ("the image exists{{ (' (' ~ image ~ ')') if image else '' }}", "the image exists"),
        ("{{ image }}", "command"),
        ("{{ empty }}", "command"),
        ("start {{ image }} on {{ port }}", "start on 8000"),
        ("port {{ port }} [{{ image }}]", "port 8000"),
        ("plain name", "plain name"),
        ("{{ undefined_var }} stays raw", "{{ undefined_var }} stays raw"),
    ],
)
def test_names_render_without_none(name: str, shown: str) -> None:
    scope = {"image": None, "empty": "", "port": 8000}
    assert render_name(Templar(), name, scope, "command") == shown


def test_tidy_name_falls_back_only_when_nothing_is_left() -> None:
    assert tidy_name("  None ", "debug") == "debug"
    assert tidy_name("a  (  ) b", "debug") == "a b"
    assert tidy_name("None of these", "debug") == "None of these"


def test_values_keep_rendering_none_elsewhere() -> None:
    # only names change: a command still sees Jinja's ordinary rendering
    assert Templar().render("x {{ v }}", {"v": None}) == "x None"
