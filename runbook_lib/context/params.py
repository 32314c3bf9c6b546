"""The runbook's parameters: declared once, loaded from ``parameters/<env>.yaml``, checked.

:class:`RunbookParameters` is the schema.  Each field carries its description (and, where it
applies, its allowed values or range, and whether it is a secret reference) in the field's
metadata, so the checks, :func:`describe_parameters` and any generated docs come from this one
declaration.  :func:`load_parameters` reads a flat YAML mapping and rejects unknown names,
wrong types, missing required values, values outside their range and literal secrets.

Secret fields hold a *reference* (``env:NAME``, ``secretsmanager:ID[#key]``, ``prompt:``), never
a value; :mod:`runbook_lib.context.secrets` resolves them when a connection needs them.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from runbook_lib.context.secrets import is_reference
from runbook_lib.core import approval
from runbook_lib.core.errors import MissingParameter, ParameterError, UnknownParameter

if TYPE_CHECKING:  # pragma: no cover - import for annotations only
    import pandas as pd

    from runbook_lib.mysql.connection import Endpoint

TLS_MODES = ("disabled", "preferred", "required", "verify_ca")
BACKUP_METHODS = ("xtrabackup", "clone", "xtrabackup_ssh", "s3")
STREAM_FORMATS = ("xbstream", "xbstream.gz", "tar.gz")     # what AWS accepts of XtraBackup's --stream
XTRABACKUP_SERIES = ("", "2.4", "8.0", "8.4")
_REQUIRED = dataclasses.MISSING
_PLACEHOLDER = re.compile(r"<[^<>]+>")  # as in parameters/example-aws.yaml


def _p(description: str, default: Any = _REQUIRED, *, secret: bool = False, choices: tuple = (),
       low: float | None = None, high: float | None = None) -> Any:
    """Declare one parameter: its description and checks live in the field's metadata."""
    meta = {"description": description, "secret": secret, "choices": choices, "low": low, "high": high}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class RunbookParameters:
    """Everything that differs between environments (lab, staging, prod...).

    Lists and mappings are loaded as plain ``list``/``dict`` so they can be handed to papermill
    as they are; treat them as read-only.
    """

    environment: str = _p("name of this environment: lab, staging, prod...")

    # --- the self-managed MySQL server (the "source") ---
    source_label: str = _p("short name of the source shown in tables", "onprem")
    source_host: str = _p("host name or address this machine uses to reach the source")
    source_port: int = _p("source MySQL port", 3306, low=1, high=65535)
    source_admin_user: str = _p("administrative account on the source")
    source_admin_password: str = _p("secret reference for source_admin_user's password", secret=True)
    source_tls: str = _p("TLS towards the source", "preferred", choices=TLS_MODES)
    source_tls_ca: str = _p("CA bundle file to verify the source's certificate (verify_ca)", "")
    source_replication_host: str = _p("how Aurora reaches the source; empty = source_host", "")

    # --- Aurora MySQL ---
    aurora_host: str = _p("Aurora cluster writer endpoint")
    aurora_port: int = _p("Aurora MySQL port", 3306, low=1, high=65535)
    aurora_admin_user: str = _p("Aurora master user (also used by the restore)", "admin")
    aurora_admin_password: str = _p("secret reference for aurora_admin_user's password", secret=True)
    aurora_tls: str = _p("TLS towards Aurora", "preferred", choices=TLS_MODES)
    aurora_tls_ca: str = _p("CA bundle file to verify Aurora's certificate (verify_ca)", "")
    aurora_replication_host: str = _p("how the source reaches Aurora's writer; empty = aurora_host", "")

    # --- AWS API ---
    aws_region: str = _p("AWS region of the Aurora cluster", "us-east-1")
    aws_endpoint_url: str = _p("AWS API endpoint; empty = real AWS (the lab: http://127.0.0.1:23308)", "")
    aws_profile: str = _p("AWS CLI profile to use; empty = the default credential chain", "")

    # --- the Aurora cluster ---
    aurora_cluster_id: str = _p("DB cluster identifier")
    aurora_writer_instance: str = _p("DB instance identifier of the writer")
    aurora_reader_instance: str = _p("DB instance identifier of a reader; empty = no reader", "")
    aurora_instance_class: str = _p("DB instance class", "db.r6g.large")
    aurora_engine_version: str = _p("Aurora engine version", "8.0.mysql_aurora.3.08.0")
    aurora_parameter_group: str = _p("custom DB cluster parameter group name")
    aurora_parameter_group_family: str = _p("parameter group family", "aurora-mysql8.0")

    # --- backup in S3, restore ---
    s3_bucket: str = _p("S3 bucket that holds the physical backup")
    s3_prefix: str = _p("key prefix of the backup inside s3_bucket", "backup/")
    restore_role_arn: str = _p("IAM role RDS assumes to read the backup from S3")

    # --- replication settings ---
    source_server_id: int = _p("server_id of the source", 1, low=1, high=4294967295)
    auto_increment_increment: int = _p("auto_increment_increment on both sides", 2, low=2, high=65535)
    source_auto_increment_offset: int = _p("auto_increment_offset on the source", 2, low=1, high=65535)
    aurora_auto_increment_offset: int = _p("auto_increment_offset on Aurora", 1, low=1, high=65535)
    source_binlog_expire_seconds: int = _p("binlog_expire_logs_seconds on the source; 0 = never purge",
                                           604800, low=0, high=4294967295)
    aurora_binlog_retention_hours: int = _p("Aurora 'binlog retention hours'", 48, low=1, high=2160)
    expected_restore_hours: float = _p("how long backup + restore may take, in hours", 6.0,
                                       low=0.01, high=2160)

    # --- backup tool ---
    backup_method: str = _p("physical backup tool", "xtrabackup", choices=BACKUP_METHODS)
    backup_dir: str = _p("local directory the backup is written to", "/var/backups/runbook")
    xtrabackup_command: str = _p("xtrabackup executable", "xtrabackup")
    xtrabackup_parallel: int = _p("xtrabackup --parallel", 4, low=1, high=64)

    # --- replication account and channel ---
    replication_user: str = _p("replication account created on both sides", "replicator")
    replication_password: str = _p("secret reference for replication_user's password", secret=True)
    replication_user_host: str = _p("host part of the replication account", "%")
    replication_ssl: bool = _p("replicate over TLS (SOURCE_SSL=1; on Aurora rds_set_binlog_source_ssl, 3.06+)", True)
    replication_connect_retry: int = _p("seconds between reconnect attempts of a replica", 10,
                                        low=1, high=86400)

    # --- applications, cut-over ---
    app_schemas: list[str] = _p("schemas that belong to applications/tenants", [])
    scopes: dict[str, dict] = _p("cut-over scopes: name -> {schemas: [...], accounts: [user@host]}", {})
    approvals: list[str] = _p("step ids approved for a headless run (DESIGN.md)", [])
    notebook_parameters: dict[str, dict] = _p("per-notebook knobs: {notebook: {knob: value}}", {})

    # --- output ---
    run_dir: str = _p("folder that receives run folders", "runs")
    report_s3_uri: str = _p("s3://bucket/prefix to upload reports to; empty = keep local", "")

    # --- issue 11 (items 2 and 4): the WARN window of phase 2; where XtraBackup runs ---
    source_gtid_warn_seconds: int = _p("seconds phase 2 holds enforce_gtid_consistency=WARN under normal load, "
                                       "watching for GTID-unsafe statements, before ON; 0 = no window", 3600,
                                       low=0, high=7 * 86400)
    backup_ssh_host: str = _p("xtrabackup_ssh: the source's host as ssh reaches it; empty = source_host", "")
    backup_ssh_port: int = _p("xtrabackup_ssh: ssh port of the source's host", 22, low=1, high=65535)
    backup_ssh_user: str = _p("xtrabackup_ssh: ssh user on the source's host (may run xtrabackup, reads the "
                              "data directory); empty = ssh's default", "")
    backup_ssh_key: str = _p("xtrabackup_ssh: private key FILE (a path, never the key); empty = ssh-agent or "
                             "~/.ssh/config", "")
    backup_ssh_known_hosts: str = _p("xtrabackup_ssh: known_hosts file holding the host's key; empty = ssh's "
                                     "default (the host key is always checked)", "")
    backup_spool_dir: str = _p("xtrabackup_ssh: directory on the source's host that keeps a copy of the stream, "
                               "so an interrupted upload continues; empty = pipe only", "")
    backup_stream_format: str = _p("xtrabackup_ssh: format of the stream in S3", "xbstream", choices=STREAM_FORMATS)
    backup_part_mib: int = _p("xtrabackup_ssh: S3 multipart part size in MiB", 64, low=5, high=5120)
    xtrabackup_version: str = _p("XtraBackup series on the source's host; empty = the one for the source's "
                                 "MySQL (5.7: 2.4, 8.0: 8.0, 8.4: 8.4)", "", choices=XTRABACKUP_SERIES)
    backup_s3_name: str = _p("s3: the backup the DBA already uploaded, at s3://s3_bucket/s3_prefix<name>/", "")

    # --- helpers ----------------------------------------------------------------------

    def source_endpoint(self) -> Endpoint:
        """Where the runbook connects to the source (administrative account)."""
        from runbook_lib.mysql.connection import Endpoint
        return Endpoint(role="source", host=self.source_host, port=self.source_port,
                        user=self.source_admin_user, tls=self.source_tls, tls_ca=self.source_tls_ca)

    def aurora_endpoint(self) -> Endpoint:
        """Where the runbook connects to Aurora's writer (master user)."""
        from runbook_lib.mysql.connection import Endpoint
        return Endpoint(role="aurora", host=self.aurora_host, port=self.aurora_port,
                        user=self.aurora_admin_user, tls=self.aurora_tls, tls_ca=self.aurora_tls_ca)

    def source_host_for_aurora(self) -> str:
        """The source's address as Aurora sees it (``source_replication_host`` or ``source_host``)."""
        return self.source_replication_host or self.source_host

    def aurora_host_for_source(self) -> str:
        """Aurora's writer address as the source sees it."""
        return self.aurora_replication_host or self.aurora_host

    def knobs(self, notebook: str) -> dict:
        """The ``notebook_parameters`` of one notebook (a copy; empty if none)."""
        return dict(self.notebook_parameters.get(notebook, {}))

    def redacted_dict(self) -> dict[str, Any]:
        """All values, safe to show or archive: secret fields only ever hold references."""
        return dataclasses.asdict(self)


# --- schema introspection --------------------------------------------------------------

_HINTS: dict[str, Any] = typing.get_type_hints(RunbookParameters)
FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(RunbookParameters)}


def _type_name(name: str) -> str:
    if FIELDS[name].metadata["secret"]:
        return "secret ref"
    hint = _HINTS[name]
    return hint.__name__ if isinstance(hint, type) else str(hint)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not _REQUIRED:
        return f.default
    if f.default_factory is not _REQUIRED:
        return f.default_factory()
    return _REQUIRED


def describe_parameters() -> pd.DataFrame:
    """One row per parameter: name, type, default ('(required)' if none), description."""
    import pandas as pd
    rows = []
    for name, f in FIELDS.items():
        default = _default(f)
        meta = f.metadata
        description = meta["description"]
        if meta["choices"]:
            description += f" ({' | '.join(meta['choices'])})"
        rows.append({"name": name, "type": _type_name(name),
                     "default": "(required)" if default is _REQUIRED else repr(default),
                     "description": description})
    return pd.DataFrame(rows, columns=["name", "type", "default", "description"])


# --- loading ---------------------------------------------------------------------------

class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a name given twice (PyYAML silently keeps the last one)."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"{key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_parameters(path: str | Path) -> RunbookParameters:
    """Read and check ``parameters/<env>.yaml``.

    Raises UnknownParameter, MissingParameter or ParameterError (naming the parameter and the file).
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ParameterError("params_file", f"cannot read {source}: {e.strerror or e}",
                             hint="pass the path of parameters/<env>.yaml") from e
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        # Only the position and the problem: PyYAML's snippet would echo the line, which could
        # hold a literal password.
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ParameterError("params_file", f"{source} is not valid YAML{where}: {problem}",
                             hint="fix that line; quote values that contain ': ' or ' #'") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParameterError("params_file", f"{source} must be a flat mapping of name: value, "
                                            f"not a {type(data).__name__}")
    return parameters_from_mapping(data, source=source)


def parameters_from_mapping(data: dict[str, Any], *, source: str = "<mapping>") -> RunbookParameters:
    """Check a mapping of parameter values (as read from YAML) and build RunbookParameters."""
    known = tuple(FIELDS)
    for name in data:
        if name not in FIELDS:
            raise _unknown(str(name), source, known)
    values: dict[str, Any] = {}
    for name, f in FIELDS.items():
        value = data.get(name)
        required = _default(f) is _REQUIRED
        if value is None or (required and value == ""):
            if required:
                raise MissingParameter(name, source=source)
            continue  # null for an optional parameter means "the default"
        values[name] = _check_value(name, value, source)
    params = RunbookParameters(**values)
    _check_together(params, source)
    return params


def _unknown(name: str, source: str, known: tuple[str, ...]) -> UnknownParameter:
    err = UnknownParameter(name, source=source, known=known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    if close:  # spelling mistakes the prefix rule in errors.py cannot see ('sorce_host')
        err.hint = f"did you mean {' or '.join(close)}?"
        err.args = (str(err),)
    return err


def _type_error(name: str, value: Any, expected: str, source: str, *, secret: bool = False) -> ParameterError:
    got = type(value).__name__
    shown = "" if secret else f" {value!r}"
    hint = ""
    if isinstance(value, bool) and expected == "str":
        hint = "YAML reads yes/no/on/off/true/false as booleans: put the value in quotes"
    elif isinstance(value, str) and expected in ("int", "float", "bool"):
        hint = "write the value without quotes"
    return ParameterError(name, f"expected {expected}, got {got}{shown}", source=source, hint=hint)


def _check_value(name: str, value: Any, source: str) -> Any:
    meta = FIELDS[name].metadata
    hint = _HINTS[name]
    origin = typing.get_origin(hint)
    if meta["secret"]:
        if not isinstance(value, str):
            raise _type_error(name, value, "a secret reference (str)", source, secret=True)
        if not is_reference(value):
            raise ParameterError(
                name, "looks like a literal secret; a secret parameter holds a reference", source=source,
                hint="use env:NAME, secretsmanager:ID, secretsmanager:ID#key or prompt: - and remove the "
                     "value from this file (and its git history), then rotate that password")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _type_error(name, value, "float", source)
        value = float(value)
    elif hint in (int, str, bool):
        if type(value) is not hint:
            raise _type_error(name, value, hint.__name__, source)
        if hint is str and _PLACEHOLDER.search(value):
            raise ParameterError(name, f"{value!r} is still a placeholder of the template", source=source,
                                 hint="replace <...> with this environment's value")
    elif origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _type_error(name, value, "list[str]", source)
        value = list(value)
    elif origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, dict)
                                                  for k, v in value.items()):
            raise _type_error(name, value, "dict[str, dict]", source)
        value = {k: dict(v) for k, v in value.items()}
    if meta["choices"] and value not in meta["choices"]:
        raise ParameterError(name, f"{value!r} is not one of {', '.join(meta['choices'])}", source=source)
    low, high = meta["low"], meta["high"]
    if low is not None and not (low <= value <= high):
        raise ParameterError(name, f"{value} is outside {low:g}..{high:g}", source=source)
    return value


_SCHEMA = re.compile(r"^[A-Za-z0-9_$]+$")
_ACCOUNT = re.compile(r"^[^@\s]+@[^@\s]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$")


def _check_together(p: RunbookParameters, source: str) -> None:
    """Checks that involve more than one value, or the inside of lists and mappings."""
    def fail(name: str, problem: str, hint: str = "") -> None:
        raise ParameterError(name, problem, source=source, hint=hint)

    inc = p.auto_increment_increment
    for name in ("source_auto_increment_offset", "aurora_auto_increment_offset"):
        if getattr(p, name) > inc:
            fail(name, f"{getattr(p, name)} is larger than auto_increment_increment ({inc})",
                 "an offset must be 1..auto_increment_increment, or both sides generate the same ids")
    if p.source_auto_increment_offset == p.aurora_auto_increment_offset:
        fail("aurora_auto_increment_offset",
             f"equals source_auto_increment_offset ({p.source_auto_increment_offset})",
             "with equal offsets both sides generate the same AUTO_INCREMENT values and rows inserted "
             "on each side collide (duplicate key: replication stops); use different offsets, e.g. "
             "aurora 1 and source 2 with increment 2")
    for side in ("source", "aurora"):
        if getattr(p, f"{side}_tls") == "verify_ca" and not getattr(p, f"{side}_tls_ca"):
            fail(f"{side}_tls_ca", "is empty but %s_tls is verify_ca" % side,
                 "give the CA bundle file (for Aurora: the RDS global bundle)")
    if 0 < p.source_binlog_expire_seconds < p.expected_restore_hours * 3600:
        fail("source_binlog_expire_seconds",
             f"{p.source_binlog_expire_seconds}s is shorter than expected_restore_hours "
             f"({p.expected_restore_hours:g}h)",
             "the source would purge binlogs Aurora still needs when replication starts after the restore")
    if p.aws_endpoint_url and not re.match(r"^https?://\S+$", p.aws_endpoint_url):
        fail("aws_endpoint_url", f"{p.aws_endpoint_url!r} is not an http(s):// URL")
    if p.report_s3_uri and not p.report_s3_uri.startswith("s3://"):
        fail("report_s3_uri", f"{p.report_s3_uri!r} is not an s3:// URI")
    if not _ROLE_ARN.match(p.restore_role_arn):
        fail("restore_role_arn", f"{p.restore_role_arn!r} is not an IAM role ARN",
             "expected arn:aws:iam::<12-digit account>:role/<name>")
    if p.aurora_reader_instance and p.aurora_reader_instance == p.aurora_writer_instance:
        fail("aurora_reader_instance", "is the same as aurora_writer_instance")
    for schema in p.app_schemas:
        if not _SCHEMA.match(schema):
            fail("app_schemas", f"{schema!r} is not a plain schema name")
    _check_scopes(p, fail)
    _check_backup(p, fail)
    approval.Approvals.build((), p.approvals, scopes=p.scopes, source=source)


def _check_backup(p: RunbookParameters, fail) -> None:
    if "PRIVATE KEY" in p.backup_ssh_key or "\n" in p.backup_ssh_key:
        fail("backup_ssh_key", "holds a key, not a path", "give the key file's path, or leave it empty for ssh-agent")
    if p.backup_method == "s3" and not re.match(r"^[A-Za-z0-9_.\-]+$", p.backup_s3_name):
        fail("backup_s3_name", f"{p.backup_s3_name!r} is not a folder name under s3_prefix",
             "with backup_method s3, name the folder the backup was uploaded to")
    if p.backup_stream_format == "tar.gz" and p.xtrabackup_version not in ("", "2.4"):
        fail("backup_stream_format", f"tar.gz needs XtraBackup 2.4, not {p.xtrabackup_version}",
             "XtraBackup 8.0 and 8.4 stream xbstream only")


def _check_scopes(p: RunbookParameters, fail) -> None:
    for scope, spec in p.scopes.items():
        name = f"scopes.{scope}"
        if not re.match(r"^[a-z0-9_-]+$", scope):
            fail(name, "a scope name is lower case letters, digits, '_' or '-'")
        extra = set(spec) - {"schemas", "accounts"}
        if extra:
            fail(name, f"unknown keys {', '.join(sorted(extra))}", "a scope has only schemas and accounts")
        schemas, accounts = spec.get("schemas", []), spec.get("accounts", [])
        for key, items in (("schemas", schemas), ("accounts", accounts)):
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                fail(f"{name}.{key}", "expected a list of strings")
        if not schemas:
            fail(f"{name}.schemas", "is empty", "a cut-over scope moves at least one schema")
        missing = [s for s in schemas if s not in p.app_schemas]
        if missing:
            fail(f"{name}.schemas", f"{', '.join(missing)} not in app_schemas",
                 "add them to app_schemas so the consistency checks cover what is cut over")
        for account in accounts:
            if not _ACCOUNT.match(account):
                fail(f"{name}.accounts", f"{account!r} is not user@host")
