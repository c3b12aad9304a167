"""engine.load.loader: the model built from playbooks, task files and roles."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engine.errors import Position, ValidationError
from engine.load.loader import Loader
from engine.model import Play, Task


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def _rel(key: str) -> str:
    """``roles__web__tasks__main_yaml`` -> ``roles/web/tasks/main.yaml``."""
    return key.replace("__", "/").removesuffix("_yaml") + ".yaml"


def load(root: Path, playbook: str, **files: str) -> tuple[Play, ...]:
    write(root, {"playbook.yaml": playbook, **{_rel(k): v for k, v in files.items()}})
    return Loader([root / "roles"]).load_playbook(root / "playbook.yaml").plays


def err(root: Path, playbook: str, **files: str) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        load(root, playbook, **files)
    return info.value


def leaves(tasks: tuple[Task, ...]) -> list[Task]:
    out: list[Task] = []
    for t in tasks:
        if t.is_block:
            out += leaves(t.block + t.rescue + t.always)
        else:
            out.append(t)
    return out


def test_minimal_play(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        """
        - name: web
          hosts: [gpu, cpu]
          vars: {port: 80}
          tasks:
            - name: hi
              command: echo hi
              register: out
              when: port > 1
              tags: [a]
              notify: h
          handlers:
            - name: h
              debug: {msg: h}
        """,
    )
    assert play.name == "web"
    assert play.hosts == "gpu:cpu"
    assert play.vars == {"port": 80}
    (task,) = play.tasks
    assert task.action == "command"
    assert task.args == {"cmd": "echo hi"}
    assert task.register == "out"
    assert task.when == ("port > 1",)
    assert task.tags == frozenset({"a"})
    assert task.notify == ("h",)
    assert task.pos == Position(str(tmp_path / "playbook.yaml"), 5, 7)
    assert [h.name for h in play.handlers] == ["h"]


def test_play_names_default_to_their_index(tmp_path: Path) -> None:
    plays = load(tmp_path, "- hosts: a\n  tasks: []\n- hosts: b\n")
    assert [p.name for p in plays] == ["play #1", "play #2"]


def test_args_keyword_merges_into_action_args(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path, "- hosts: a\n  tasks:\n    - shell: echo hi\n      args:\n        chdir: /tmp\n"
    )
    assert dict(play.tasks[0].args) == {"cmd": "echo hi", "chdir": "/tmp"}


def test_free_form_and_templated_args_pass_load(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        """
        - hosts: a
          vars: {p: 80}
          tasks:
            - wait_for: {port: "{{ p }}", timeout: 1}
            - command: echo {{ p }}
        """,
    )
    assert play.tasks[0].args["port"] == "{{ p }}"


def test_block_rescue_always(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        """
        - hosts: a
          tasks:
            - name: b
              when: true
              block:
                - command: echo 1
              rescue:
                - command: echo 2
              always:
                - command: echo 3
        """,
    )
    (block,) = play.tasks
    assert block.is_block and block.when == (True,)
    assert [len(block.block), len(block.rescue), len(block.always)] == [1, 1, 1]


def test_import_tasks_is_expanded_at_load(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        "- hosts: a\n  tasks:\n    - import_tasks: tasks/more.yaml\n",
        tasks__more_yaml="- name: one\n  command: echo 1\n- name: two\n  command: echo 2\n",
    )
    assert [t.name for t in play.tasks] == ["one", "two"]
    assert play.tasks[1].pos == Position(str(tmp_path / "tasks/more.yaml"), 3, 3)


def test_import_tasks_with_when_becomes_a_block(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        "- hosts: a\n  tasks:\n    - import_tasks: more.yaml\n      when: x\n",
        more_yaml="- command: echo 1\n",
    )
    assert play.tasks[0].is_block and play.tasks[0].when == ("x",)


def test_roles_tasks_handlers_defaults_and_scope(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        "- hosts: a\n  roles:\n    - role: web\n      port: 81\n",
        roles__web__tasks__main_yaml="- name: start\n  command: echo {{ port }}\n  notify: restart\n",
        roles__web__tasks__extra_yaml="- name: extra\n  command: echo x\n",
        roles__web__handlers__main_yaml="- name: restart\n  command: echo r\n",
        roles__web__defaults__main_yaml="port: 80\n",
        roles__web__vars__main_yaml="internal: 1\n",
    )
    (block,) = play.tasks
    assert block.action == "role" and block.role is not None
    assert dict(block.role.params) == {"port": 81}
    (task,) = block.block
    assert task.display_name == "web : start"
    assert task.role is not None and task.role.name == "web"
    role = task.role.role
    assert role.defaults == {"port": 80}
    assert role.vars == {"internal": 1}
    assert set(role.entry_points) == {"main", "extra"}
    assert [h.display_name for h in play.handlers] == ["web : restart"]


def test_import_role_tasks_from(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        "- hosts: a\n  tasks:\n    - import_role: {name: web, tasks_from: extra}\n",
        roles__web__tasks__main_yaml="- name: main\n  command: echo m\n",
        roles__web__tasks__extra_yaml="- name: extra\n  command: echo x\n",
    )
    assert [t.display_name for t in leaves(play.tasks)] == ["web : extra"]


def test_role_dependencies_run_first(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        "- hosts: a\n  roles: [app]\n",
        roles__app__tasks__main_yaml="- name: app\n  command: echo a\n",
        roles__app__meta__main_yaml="dependencies: [base]\n",
        roles__base__tasks__main_yaml="- name: base\n  command: echo b\n",
    )
    assert [t.display_name for t in leaves(play.tasks)] == ["base : base", "app : app"]


def test_shared_dependency_runs_once_per_play(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        "- hosts: a\n  roles: [a, b, c]\n",
        roles__a__tasks__main_yaml="- name: a\n  command: echo a\n",
        roles__a__meta__main_yaml="dependencies: [c]\n",
        roles__b__tasks__main_yaml="- name: b\n  command: echo b\n",
        roles__b__meta__main_yaml="dependencies: [c]\n",
        roles__c__tasks__main_yaml="- name: c\n  command: echo c\n",
    )
    assert [t.display_name for t in leaves(play.tasks)] == ["c : c", "a : a", "b : b"]


def test_role_dependency_cycle(tmp_path: Path) -> None:
    e = err(
        tmp_path,
        "- hosts: a\n  roles: [a]\n",
        roles__a__tasks__main_yaml="- command: echo a\n",
        roles__a__meta__main_yaml="dependencies: [b]\n",
        roles__b__tasks__main_yaml="- command: echo b\n",
        roles__b__meta__main_yaml="dependencies: [a]\n",
    )
    assert "cycle" in e.message
    assert "a -> b -> a" in e.message
    assert e.pos == Position(str(tmp_path / "roles/b/meta/main.yaml"), 1, 16)


def test_role_with_other_params_runs_again(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        "- hosts: a\n  roles: [c, {role: c, n: 2}, c]\n",
        roles__c__tasks__main_yaml="- name: c\n  command: echo c\n",
    )
    assert [t.display_name for t in leaves(play.tasks)] == ["c : c", "c : c"]


@pytest.mark.parametrize("keyword", ["when", "until", "changed_when", "failed_when"])
def test_braces_in_conditions_are_rejected_at_load(tmp_path: Path, keyword: str) -> None:
    e = err(tmp_path, f"- hosts: a\n  tasks:\n    - command: echo\n      {keyword}: ['x', '{{{{ y }}}}']\n")
    assert e.message == f"'{keyword}' is a bare expression; remove the {{{{ }}}} around it"
    assert e.pos == Position(str(tmp_path / "playbook.yaml"), 4, 15 + len(keyword))


def test_unknown_role_suggests_and_lists_the_path(tmp_path: Path) -> None:
    e = err(
        tmp_path,
        "- hosts: a\n  roles:\n    - webserve\n",
        roles__webserver__tasks__main_yaml="- command: echo\n",
    )
    assert e.message == "role 'webserve' not found"
    assert e.pos == Position(str(tmp_path / "playbook.yaml"), 3, 7)
    assert e.hint is not None and e.hint.startswith("did you mean 'webserver'?")
    assert str(tmp_path / "roles") in e.hint


def test_missing_tasks_from(tmp_path: Path) -> None:
    e = err(
        tmp_path,
        "- hosts: a\n  tasks:\n    - import_role:\n        name: web\n        tasks_from: nope\n",
        roles__web__tasks__main_yaml="- command: echo\n",
    )
    assert "has no tasks file 'nope'" in e.message
    assert e.pos is not None and e.pos.line in (4, 5)


def test_role_entry_needs_a_name(tmp_path: Path) -> None:
    e = err(tmp_path, "- hosts: a\n  roles:\n    - port: 1\n")
    assert "needs 'role: NAME'" in e.message
    assert e.pos == Position(str(tmp_path / "playbook.yaml"), 3, 7)


def test_errors_in_role_files_point_into_the_role(tmp_path: Path) -> None:
    e = err(
        tmp_path,
        "- hosts: a\n  roles: [web]\n",
        roles__web__tasks__main_yaml="- name: x\n  command: echo\n  whenn: true\n",
    )
    assert e.pos == Position(str(tmp_path / "roles/web/tasks/main.yaml"), 3, 3)
    assert e.context == "task 'x' of role 'web'"
    assert e.hint == "did you mean 'when'?"


def test_role_defaults_must_be_a_mapping(tmp_path: Path) -> None:
    e = err(
        tmp_path,
        "- hosts: a\n  roles: [web]\n",
        roles__web__tasks__main_yaml="- command: echo\n",
        roles__web__defaults__main_yaml="- a\n",
    )
    assert "must be a mapping" in e.message
    assert e.pos is not None and e.pos.file.endswith("defaults/main.yaml")


def test_argument_specs_are_loaded(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        "- hosts: a\n  roles: [{role: web, port: 1}]\n",
        roles__web__tasks__main_yaml="- command: echo\n",
        roles__web__meta__main_yaml="""
            argument_specs:
              main:
                short_description: web server
                options:
                  port: {type: int, required: true, description: [the, port]}
                  mode: {choices: [a, b], default: a}
            """,
    )
    role = play.tasks[0].role.role  # type: ignore[union-attr]
    assert role.description == "web server"
    port, mode = role.argument_specs["port"], role.argument_specs["mode"]
    assert (port.type, port.required, port.description) == ("int", True, "the port")
    assert port.pos is not None and port.pos.line == 5
    assert (mode.type, mode.choices, mode.default, mode.has_default) == (
        "str",
        ("a", "b"),
        "a",
        True,
    )


@pytest.mark.parametrize(
    ("task", "message", "line", "col"),
    [
        ("- name: t\n      comand: echo", "unknown action 'comand'", 4, 7),
        ("- name: t\n      command: echo\n      notfy: x", "unknown keyword 'notfy'", 5, 7),
        ("- name: t\n      command: echo\n      shell: echo", "more than one action", 5, 7),
        ("- name: t\n      register: x", "task has no action", 3, 7),
        ("- name: t\n      meta: flush", "unknown meta action 'flush'", 4, 13),
        (
            "- name: t\n      command: echo\n      retries: [1]",
            "invalid value for 'retries'",
            5,
            16,
        ),
        (
            "- name: t\n      shell: {cmd: x, chdri: y}",
            "unknown keyword 'chdri' in 'shell' arguments",
            4,
            23,
        ),
        ("- name: t\n      template: {src: a}", "missing required keyword 'dest'", 4, 17),
        ("- name: t\n      wait_for: {port: http}", "invalid value for 'port'", 4, 24),
        ("- name: t\n      debug: msg=hi", "arguments of 'debug' must be a mapping", 4, 14),
        (
            "- name: t\n      block: []\n      command: echo",
            "unknown keyword 'command' in block",
            5,
            7,
        ),
        (
            "- name: t\n      command: echo\n      listen: x",
            "unknown keyword 'listen' in task",
            5,
            7,
        ),
        ("- command: echo\n      notify: nope", "no handler named or listening to 'nope'", 4, 15),
        ("- import_tasks: '{{ f }}'", "import_tasks is static", 3, 21),
        ("- import_tasks: nope.yaml", "task file 'nope.yaml' not found", 3, 21),
        ("- 'command: echo'", "a task must be a mapping", 3, 7),
    ],
)
def test_task_errors_point_at_the_field(
    tmp_path: Path, task: str, message: str, line: int, col: int
) -> None:
    e = err(tmp_path, f"- hosts: a\n  tasks:\n    {task}\n")
    assert message in e.message
    assert e.pos == Position(str(tmp_path / "playbook.yaml"), line, col)


def test_handler_listen_and_notify_by_listen(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        """
        - hosts: a
          tasks:
            - command: echo
              notify: [restart all]
          handlers:
            - name: restart web
              command: echo w
              listen: restart all
        """,
    )
    assert play.handlers[0].listen == ("restart all",)


def test_notify_a_role_handler_by_display_name(tmp_path: Path) -> None:
    (play,) = load(
        tmp_path,
        "- hosts: a\n  roles: [web]\n  tasks:\n    - command: echo\n      notify: 'web : restart'\n",
        roles__web__tasks__main_yaml="- command: echo\n",
        roles__web__handlers__main_yaml="- name: restart\n  command: echo r\n",
    )
    assert play.tasks[-1].notify == ("web : restart",)


def test_unknown_handler_suggests(tmp_path: Path) -> None:
    e = err(
        tmp_path,
        """
        - hosts: a
          tasks:
            - command: echo
              notify:
                - restart app
                - restart appp
          handlers:
            - name: restart app
              command: echo r
        """,
    )
    assert "'restart appp'" in e.message
    assert e.pos == Position(str(tmp_path / "playbook.yaml"), 6, 11)
    assert e.hint == "did you mean 'restart app'?"


def test_vars_files_keep_positions(tmp_path: Path) -> None:
    (play,) = load(tmp_path, "- hosts: a\n  vars_files:\n    - vars/x.yaml\n")
    assert getattr(play.vars_files[0], "pos", None) == Position(
        str(tmp_path / "playbook.yaml"), 3, 7
    )
