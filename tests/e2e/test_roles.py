"""Roles end to end: dependencies first, argument specs, defaults vs params, templates,
handlers, include/import, tags and the vars --explain command."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Workdir

pytestmark = pytest.mark.e2e


@pytest.fixture
def project(work: Workdir) -> Workdir:
    work.write("roles/base/tasks/main.yaml", """
- name: base marker
  shell: echo base >> order.txt
""")
    work.write("roles/greeter/meta/main.yaml", """
dependencies: [base]
argument_specs:
  main:
    short_description: writes a greeting
    options:
      who: {type: str, required: true, description: whom to greet}
      times: {type: int, default: 1}
      style: {type: str, choices: [plain, loud], default: plain}
""")
    work.write("roles/greeter/defaults/main.yaml", "greeting: hello\n")
    work.write("roles/greeter/templates/greeting.txt.j2", "{{ greeting }} {{ who }}{% if style == 'loud' %}!{% endif %} x{{ times }}\n")
    work.write("roles/greeter/tasks/main.yaml", """
- name: write greeting
  template: {src: greeting.txt.j2, dest: "{{ playbook_dir }}/greeting-{{ who }}.txt"}
  notify: greeted
- name: extra
  include_tasks: extra.yaml
- name: tagged only
  shell: echo tagged >> order.txt
  tags: [special]
""")
    work.write("roles/greeter/tasks/extra.yaml", """
- name: extra step
  shell: echo extra-{{ item }} >> order.txt
  loop: "{{ range(times) | list }}"
""")
    work.write("roles/greeter/handlers/main.yaml", """
- name: greeted
  shell: echo handler >> order.txt
""")
    return work


def test_role_runs_with_dependencies_templates_and_handlers(project: Workdir) -> None:
    project.write("pb.yaml", """
- hosts: localhost
  roles:
    - role: greeter
      who: world
      times: 2
      style: loud
""")
    proc = project.smlplay("run", "-v", "pb.yaml", "--skip-tags", "special")  # -v: every TASK line
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (project.path / "greeting-world.txt").read_text() == "hello world! x2\n"
    assert (project.path / "order.txt").read_text().split() == ["base", "extra-0", "extra-1", "handler"]
    assert "TASK [greeter : write greeting]" in proc.stdout


def test_role_argument_errors_name_role_and_argument(project: Workdir) -> None:
    project.write("pb.yaml", """
- hosts: localhost
  roles:
    - role: greeter
      who: world
      style: shouty
""")
    proc = project.smlplay("run", "pb.yaml")
    assert proc.returncode == 2
    assert "invalid argument 'style' of role 'greeter'" in proc.stderr
    assert "pb.yaml:6:14" in proc.stderr
    assert not (project.path / "order.txt").exists()


def test_vars_explain_shows_origin(project: Workdir) -> None:
    project.write("pb.yaml", """
- hosts: localhost
  vars:
    port: 8000
  tasks:
    - debug: {var: port}
""")
    proc = project.smlplay("vars", "pb.yaml", "--explain", "port", "-e", "port=9000")
    assert proc.returncode == 0, proc.stderr
    assert "port = \"9000\"" in proc.stdout
    assert "extra vars" in proc.stdout and "play vars (pb.yaml:4:11)" in proc.stdout
