"""The schemas of what users write: play keywords, task keywords, health checks, role meta,
inventory groups and hosts. Data only (voluptuous + :mod:`engine.load.types`), so the error
messages, the docs and ``smlplay schema`` all read the same definitions.

A value that may come from a variable is wrapped in :class:`~engine.load.types.Templatable`:
a ``{{ expression }}`` passes at load time and the rendered value is checked again.
"""

from __future__ import annotations

from typing import Any

import voluptuous as vol

from engine.load.types import (
    AtLeastOne,
    Boolean,
    Condition,
    Duration,
    IntRange,
    ListOf,
    MappingOf,
    NonEmptyStr,
    NotLonger,
    Nullable,
    OneOf,
    Port,
    PositiveDuration,
    Regex,
    StrOrList,
    Templatable,
    VarName,
    is_template,
)


def TemplateStr(value: Any) -> str:
    """A string only when it is a Jinja2 expression (rendered and checked at run time)."""
    if is_template(value):
        return str(value)
    raise vol.Invalid("expected a literal value or a {{ expression }}")


Str = vol.All(str, vol.Length(min=1))
StrList = StrOrList("a name or a list of names", empty=True)
Expr = Condition()
Bool = Boolean()
DURATION = Templatable(Duration())
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
#: VarsMap's key error; to_validation_error recognises it to point at the key.
BAD_VAR_NAME = "not a valid variable name"
VarsMap = vol.Schema({vol.Match(IDENTIFIER, msg=BAD_VAR_NAME): object})
VARS = MappingOf(VarsMap, "a mapping of variable names to values")
EnvMap = vol.Schema({str: vol.Any(str, int, float, bool, msg="expected a string, number or boolean")})
ENVIRONMENT = MappingOf(EnvMap, "a mapping of environment variable names to values")

LOOP_CONTROL = MappingOf(
    {
        vol.Optional("loop_var"): VarName(),
        vol.Optional("index_var"): VarName(),
        vol.Optional("label"): object,
        vol.Optional("pause"): DURATION,
    },
    "a mapping of loop_var, index_var, label and pause",
)

# --- health checks -----------------------------------------------------------------------

PROBE_KINDS = ("http", "tcp", "log", "cmd")
HTTP_STATUS = Templatable(IntRange(100, 599, "an HTTP status"))
HTTP_PROBE_FIELDS = {
    vol.Required("url"): NonEmptyStr(),
    vol.Optional("status"): vol.Any(HTTP_STATUS, [HTTP_STATUS]),
    vol.Optional("method"): OneOf(["GET", "POST", "HEAD", "PUT"]),
    vol.Optional("json"): object,
    vol.Optional("body"): str,
    vol.Optional("json_path"): str,
    vol.Optional("equals"): object,
    vol.Optional("condition"): NonEmptyStr(),
    vol.Optional("contains"): str,
    vol.Optional("request_timeout"): DURATION,
}
HTTP_PROBE = vol.Any(NonEmptyStr(), HTTP_PROBE_FIELDS)
TCP_PROBE = vol.Any(
    Templatable(Port()),
    MappingOf({vol.Required("port"): Templatable(Port()), vol.Optional("host"): NonEmptyStr()}, "a port or {port, host}"),
)
LOG_PROBE = vol.Any(Regex(), MappingOf({vol.Required("regex"): Regex(), vol.Optional("path"): NonEmptyStr()}, "a regex or {regex, path}"))
HEALTH_FIELDS: dict[Any, Any] = {
    # one probe, or a list checked in order (``/health``, then a real generation)
    vol.Optional("http"): vol.Any(HTTP_PROBE, ListOf(HTTP_PROBE, "a URL, an {url, ...} probe, or a list of them")),
    vol.Optional("tcp"): TCP_PROBE,
    vol.Optional("log"): LOG_PROBE,
    vol.Optional("cmd"): NonEmptyStr(),
    vol.Optional("timeout"): DURATION,
    vol.Optional("interval"): DURATION,
    vol.Optional("process"): NonEmptyStr(),
    vol.Optional("name"): str,
}
#: Matches engine.health.DEFAULT_TIMEOUT (not imported: health pulls in the transports).
HEALTH_DEFAULT_TIMEOUT = 3600.0
HEALTH = vol.All(
    MappingOf(HEALTH_FIELDS, "a mapping of probes (http, tcp, log, cmd) and timeout/interval"),
    AtLeastOne(*PROBE_KINDS, hint="a health block needs at least one probe: http, tcp, log or cmd"),
    NotLonger("interval", "timeout", default_longer=HEALTH_DEFAULT_TIMEOUT),
)

TASK_KEYWORD_SCHEMAS: dict[str, Any] = {
    "name": NonEmptyStr(),
    "when": Expr,
    "loop": vol.Any(list, str),
    "loop_control": LOOP_CONTROL,
    "register": VarName(),
    "until": Expr,
    "retries": Templatable(IntRange(0, None, "a whole number of retries")),
    "delay": DURATION,
    "changed_when": Expr,
    "failed_when": Expr,
    "ignore_errors": Templatable(Bool),
    "notify": StrList,
    "tags": StrList,
    "vars": VARS,
    "environment": vol.Any(ENVIRONMENT, TemplateStr),
    "timeout": DURATION,
    "run_once": Templatable(Bool),
    "delegate_to": NonEmptyStr(),
    "no_log": Bool,
    "check_mode": Bool,
    "health": HEALTH,
    "listen": StrList,
    "args": MappingOf(dict, "a mapping of the action's arguments"),
}
#: A handler runs when notified by name, or by a topic it listens to: it needs one of them.
HANDLER_RULE = AtLeastOne("name", "listen", hint="give the handler a 'name' (or 'listen: TOPIC') that tasks can notify")

_NO_WITH = "smlplay has no with_* loops: write loop: [...] (a dict: loop: \"{{ d | dict2items }}\")"
#: Ansible keywords smlplay does not have, with what to write instead (the hint of their
#: "unknown keyword" error when no known keyword is close).
ANSIBLE_ONLY: dict[str, str] = {
    **{f"with_{k}": _NO_WITH for k in ("items", "list", "dict", "together", "nested", "fileglob", "sequence", "subelements", "indexed_items")},
    "become": "smlplay does not switch users: tasks run as the user the transport logs in as (ssh_user)",
    "become_user": "smlplay does not switch users: tasks run as the user the transport logs in as (ssh_user)",
    "local_action": "write the action itself with delegate_to: localhost",
    "async": "a long-running program is a `process` task (started in the background, stopped at teardown)",
    "poll": "a long-running program is a `process` task (started in the background, stopped at teardown)",
    "import_playbook": "smlplay runs one playbook file: put the plays in it",
    "serial": "a play runs each task on all its hosts at once (no serial batches)",
    "strategy": "smlplay has one strategy (linear)",
}

# --- roles -------------------------------------------------------------------------------

ROLE_ARG_TYPES = ("str", "int", "float", "bool", "list", "dict", "path", "raw")
ARG_SPEC = {
    vol.Optional("type"): OneOf(ROLE_ARG_TYPES),
    vol.Optional("required"): Bool,
    vol.Optional("default"): object,
    vol.Optional("choices"): list,
    vol.Optional("description"): vol.Any(str, [str]),
    vol.Optional("elements"): OneOf(ROLE_ARG_TYPES),
    vol.Optional("options"): dict,
    vol.Optional("secret"): Bool,  # its value is masked in every output (engine/secrets.py)
}
ROLE_META = {
    vol.Optional("dependencies"): ListOf(vol.Any(Str, dict), "a list of role names or {role: NAME, ...} entries"),
    vol.Optional("argument_specs"): {
        str: {
            vol.Optional("short_description"): str,
            vol.Optional("description"): vol.Any(str, [str]),
            vol.Optional("options"): {str: ARG_SPEC},
        }
    },
    vol.Optional("galaxy_info"): dict,
    vol.Optional("description"): str,
}

#: ``roles: [{role: web, port: 80, vars: {...}, when: ..., tags: ...}]``: the other keys are
#: the role's parameters (variables).
ROLE_ENTRY = {
    vol.Optional("vars"): VARS,
    vol.Optional("when"): Expr,
    vol.Optional("tags"): StrList,
    vol.Match(IDENTIFIER, msg=BAD_VAR_NAME): object,
}

# --- plays -------------------------------------------------------------------------------

TASK_LIST = ListOf(object, "a list of tasks")
PLAY = {
    vol.Required("hosts"): StrOrList("a host pattern or a non-empty list of them"),
    vol.Optional("name"): NonEmptyStr(),
    vol.Optional("vars"): VARS,
    vol.Optional("vars_files"): StrOrList("a vars file or a list of them", empty=True),
    vol.Optional("roles"): ListOf(vol.Any(Str, dict), "a list of role names or {role: NAME, ...} entries"),
    vol.Optional("pre_tasks"): TASK_LIST,
    vol.Optional("tasks"): TASK_LIST,
    vol.Optional("post_tasks"): TASK_LIST,
    vol.Optional("handlers"): ListOf(object, "a list of handlers"),
    vol.Optional("gather_facts"): Bool,
    vol.Optional("force_handlers"): Bool,
    vol.Optional("environment"): ENVIRONMENT,
    vol.Optional("tags"): StrList,
}

# --- inventory ---------------------------------------------------------------------------

#: The transports of engine.transport.pool.FACTORIES (a test keeps the two in step).
CONNECTIONS = ("local", "ssh", "srun")
#: Connection variables (host or group vars) with their types; any other variable is free.
CONNECTION_VARS: dict[Any, Any] = {
    vol.Optional("connection"): Templatable(OneOf(CONNECTIONS)),
    vol.Optional("ssh_host"): Templatable(NonEmptyStr()),
    vol.Optional("ssh_port"): Templatable(Port()),
    vol.Optional("ssh_user"): Templatable(NonEmptyStr()),
    vol.Optional("ssh_key"): Templatable(NonEmptyStr()),
    vol.Optional("ssh_jump"): Nullable(str),
    vol.Optional("ssh_known_hosts"): vol.Any(str, [str]),
    vol.Optional("ssh_strict_host_key_checking"): Templatable(Bool),
    vol.Optional("ssh_connect_timeout"): Templatable(PositiveDuration()),
    vol.Optional("ssh_retries"): Templatable(IntRange(0)),
    vol.Optional("ssh_max_shells"): Templatable(IntRange(1)),
    vol.Optional("srun_gateway"): Templatable(NonEmptyStr()),
    vol.Optional("slurm_node_probe"): Templatable(vol.Any(Duration(), False)),
    vol.Match(IDENTIFIER, msg=BAD_VAR_NAME): object,
}
HOST_VARS = MappingOf(CONNECTION_VARS, "a mapping of variable names to values")
INVENTORY_GROUP: dict[Any, Any] = {
    vol.Optional("hosts"): Nullable(
        MappingOf({str: Nullable(HOST_VARS)}, "a mapping of host names to their variables (e.g. hosts: {login: {connection: ssh}})")
    ),
    vol.Optional("vars"): Nullable(MappingOf(CONNECTION_VARS, "a mapping of variable names to values (e.g. vars: {gpus_per_node: 8})")),
    vol.Optional("children"): Nullable(
        MappingOf({str: Nullable(MappingOf(dict, "a group: a mapping of hosts, vars and children"))}, "a mapping of child group names to their groups")
    ),
}
INVENTORY_GROUP_SCHEMA = MappingOf(INVENTORY_GROUP, "a group: a mapping of hosts, vars and children")
