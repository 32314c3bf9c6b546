"""Phase 1, preflight: can this source and this Aurora plan work together?  Changes nothing, ever.

:func:`gather` reads both ends once (SELECT and SHOW only; a session setting for fresh table
sizes) into a frozen :class:`Preflight`; :func:`~runbook_lib.phases.preflight.rules.evaluate` (module
:mod:`runbook_lib.phases.preflight.rules`) turns those facts into check rows
(:class:`~runbook_lib.core.display.CheckResult`) by section, without touching a server, so the rules
are unit-tested on made-up facts.  :meth:`Preflight.show` shows one section,
:meth:`Preflight.conclude` the whole table and a verdict, and raises
:class:`~runbook_lib.core.errors.CheckFailed` carrying the table when a check failed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbook_lib.core.display import CheckResult, checks_frame, raise_if_failed, show_checks
from runbook_lib.core.errors import RunbookError
from runbook_lib.core.record import record
from runbook_lib.mysql.identity import ServerIdentity
from runbook_lib.phases.preflight.restore_s3 import RestoreFacts
from runbook_lib.phases.preflight.rules import (
    SECTIONS,
    evaluate,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from runbook_lib.context.params import RunbookParameters
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

VARIABLES = ("server_id", "server_uuid", "log_bin", "binlog_format", "sync_binlog", "gtid_mode",
             "enforce_gtid_consistency", "log_bin_trust_function_creators", "auto_increment_increment",
             "auto_increment_offset", "binlog_expire_logs_seconds", "expire_logs_days",
             "character_set_server", "collation_server", "time_zone", "system_time_zone")
_SYSTEM = "('mysql', 'sys', 'performance_schema', 'information_schema')"
_SYSTEM_ACCOUNTS = {("mysql.sys", "localhost"), ("mysql.session", "localhost"),
                    ("mysql.infoschema", "localhost"), ("root", "localhost"), ("rdsadmin", "localhost")}


@dataclass(frozen=True)
class ServerFacts:
    """What preflight read from one server: who it is and its global variables (as text)."""

    role: str
    address: str
    identity: ServerIdentity
    variables: Mapping[str, str | None] = field(default_factory=dict)

    def var(self, name: str) -> str:
        value = self.variables.get(name)
        return "—" if value is None else str(value)

    @classmethod
    def read(cls, server: Server) -> ServerFacts:
        ep = server.endpoint
        return cls(server.role, f"{ep.user}@{ep.address}", server.identity, server.variables(*VARIABLES))


@dataclass(frozen=True)
class Inventory:
    """The source's objects that matter to a physical copy and to row-based replication."""

    tables_without_pk: tuple[str, ...] = ()
    non_innodb_tables: tuple[str, ...] = ()      # 'schema.table (ENGINE)'
    routines: tuple[str, ...] = ()               # 'FUNCTION schema.name', 'EVENT schema.name'
    triggers: tuple[str, ...] = ()               # 'schema.name'
    definers: tuple[str, ...] = ()               # accounts that own routines/triggers
    accounts: tuple[str, ...] = ()               # non-system 'user@host'
    time_zone_names: int = 0
    schema_charsets: tuple[tuple[str, str, str], ...] = ()   # (schema, charset, collation)
    tables: int = 0
    data_bytes: int = 0
    index_bytes: int = 0
    rows_estimate: int = 0

    @classmethod
    def read(cls, server: Server) -> Inventory:
        fresh = server.dialect.fresh_table_statistics()
        if fresh is not None:
            server.execute(fresh)
        routines = server.query(f"""SELECT CONCAT(routine_type, ' ', routine_schema, '.', routine_name)
            AS name, definer AS definer FROM information_schema.routines WHERE routine_schema NOT IN {_SYSTEM}
            UNION ALL SELECT CONCAT('EVENT ', event_schema, '.', event_name), definer
            FROM information_schema.events WHERE event_schema NOT IN {_SYSTEM} ORDER BY 1""")
        triggers = server.query(f"""SELECT CONCAT(trigger_schema, '.', trigger_name) AS name,
            definer AS definer FROM information_schema.triggers
            WHERE trigger_schema NOT IN {_SYSTEM} ORDER BY 1""")
        size = server.query_one(f"""SELECT COUNT(*) AS tables, COALESCE(SUM(data_length), 0) AS data,
            COALESCE(SUM(index_length), 0) AS idx, COALESCE(SUM(table_rows), 0) AS row_count
            FROM information_schema.tables
            WHERE table_type = 'BASE TABLE' AND table_schema NOT IN {_SYSTEM}""")
        accounts = [f"{r['user']}@{r['host']}" for r in server.query(
            "SELECT user AS user, host AS host FROM mysql.user ORDER BY user, host")
            if (r["user"], r["host"]) not in _SYSTEM_ACCOUNTS]
        return cls(
            tables_without_pk=_names(server, f"""SELECT CONCAT(t.table_schema, '.', t.table_name) AS name
                FROM information_schema.tables t LEFT JOIN information_schema.table_constraints c
                  ON c.table_schema = t.table_schema AND c.table_name = t.table_name
                 AND c.constraint_type = 'PRIMARY KEY'
                WHERE t.table_type = 'BASE TABLE' AND t.table_schema NOT IN {_SYSTEM}
                  AND c.constraint_name IS NULL ORDER BY 1"""),
            non_innodb_tables=_names(server, f"""SELECT
                CONCAT(table_schema, '.', table_name, ' (', engine, ')') AS name
                FROM information_schema.tables WHERE table_type = 'BASE TABLE'
                AND table_schema NOT IN {_SYSTEM} AND engine <> 'InnoDB' ORDER BY 1"""),
            routines=tuple(r["name"] for r in routines), triggers=tuple(r["name"] for r in triggers),
            definers=tuple(sorted({_account(r["definer"]) for r in [*routines, *triggers]})),
            accounts=tuple(accounts),
            time_zone_names=int(server.scalar("SELECT COUNT(*) FROM mysql.time_zone_name") or 0),
            schema_charsets=tuple((r["name"], r["cs"], r["co"]) for r in server.query(
                f"""SELECT schema_name AS name, default_character_set_name AS cs, default_collation_name AS co
                FROM information_schema.schemata WHERE schema_name NOT IN {_SYSTEM} ORDER BY 1""")),
            tables=int(size["tables"]), data_bytes=int(size["data"]), index_bytes=int(size["idx"]),
            rows_estimate=int(size["row_count"]))


def _names(server: Server, sql: str) -> tuple[str, ...]:
    return tuple(str(r["name"]) for r in server.query(sql))


def _account(definer: str) -> str:
    user, _, host = str(definer).rpartition("@")
    return f"{user.strip('`')}@{host.strip('`')}"


@dataclass(frozen=True)
class AwsFacts:
    """The AWS API as this machine sees it, and the Aurora cluster if it exists."""

    region: str
    endpoint: str                    # the endpoint URL, or 'real AWS'
    account: str = ""                # from STS GetCallerIdentity
    problem: str = ""                # '' when the API answered
    cluster: Mapping[str, Any] | None = None   # Status, EngineVersion, Endpoint, Port, writer

    @classmethod
    def read(cls, rb: Session) -> AwsFacts:
        from botocore.exceptions import BotoCoreError, ClientError
        p = rb.params
        where = dict(region=p.aws_region, endpoint=p.aws_endpoint_url or "real AWS")
        try:
            account = rb.aws("sts").get_caller_identity()["Account"]
        except (BotoCoreError, ClientError) as e:
            return cls(**where, problem=f"STS GetCallerIdentity: {e}")
        try:
            found = rb.aws("rds").describe_db_clusters(DBClusterIdentifier=p.aurora_cluster_id)["DBClusters"]
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") == "DBClusterNotFoundFault":
                return cls(**where, account=account)
            return cls(**where, account=account, problem=f"RDS DescribeDBClusters: {e}")
        except BotoCoreError as e:
            return cls(**where, account=account, problem=f"RDS DescribeDBClusters: {e}")
        c = found[0]
        members = c.get("DBClusterMembers", [])
        writer = ", ".join(m["DBInstanceIdentifier"] for m in members if m.get("IsClusterWriter")) or "none"
        return cls(**where, account=account, cluster={
            "status": c.get("Status", ""), "engine_version": c.get("EngineVersion", ""),
            "endpoint": f"{c.get('Endpoint', '')}:{c.get('Port', '')}", "writer": writer})


@dataclass(frozen=True)
class Preflight:
    """Everything preflight read; :meth:`checks` judges it (pure: see :func:`evaluate`)."""

    params: RunbookParameters
    source: ServerFacts
    inventory: Inventory
    aws: AwsFacts
    aurora: ServerFacts | None = None
    aurora_problem: str = ""         # why the existing cluster's writer could not be read
    restore: RestoreFacts | None = None   # what a restore from S3 depends on (None: not read)

    def checks(self, section: str | None = None) -> tuple[CheckResult, ...]:
        table = evaluate(self)
        if section is None:
            return tuple(r for rows in table.values() for r in rows)
        if section not in table:
            raise RunbookError(f"no preflight section {section!r}", hint=f"sections: {', '.join(SECTIONS)}")
        return tuple(table[section])

    def to_frame(self, section: str | None = None) -> pd.DataFrame:
        return checks_frame(self.checks(section))

    def show(self, section: str) -> None:
        """One section's rows and its own verdict line."""
        show_checks(self.checks(section), f"preflight, {SECTIONS[section]}")

    def conclude(self) -> None:
        """The whole table and its verdict; CheckFailed (carrying the table) if any check failed."""
        rows = self.checks()
        show_checks(rows, "preflight")
        record("preflight", {
            "failed": [r.item for r in rows if r.status == "fail"],
            "warnings": [r.item for r in rows if r.status == "warn"],
            "source_version": self.source.identity.version_text,
            "data_gib": round((self.inventory.data_bytes + self.inventory.index_bytes) / 2**30, 3),
            "aurora_cluster": "exists" if self.aws.cluster else "not yet"})
        raise_if_failed(rows, "preflight", hint="fix each failed row as its advice says (nothing was "
                                                "changed), then run this notebook again")


def gather(rb: Session) -> Preflight:
    """Read both ends.  An unreachable source raises its connection error here (nothing else is
    possible without it); AWS and Aurora problems become failed rows of the table."""
    server = rb.source()                       # ConnectionFailed / AuthenticationFailed name the server
    source = ServerFacts.read(server)
    inventory = Inventory.read(server)
    restore = RestoreFacts.read(server, rb.params)
    print(f"source: {source.identity.describe()}")
    aws = AwsFacts.read(rb)
    aurora, problem = None, ""
    if aws.cluster is not None:
        try:
            aurora = ServerFacts.read(rb.aurora())
        except RunbookError as e:            # shown as a failed row; conclude() raises CheckFailed
            problem = str(e)
    print(f"AWS: {aws.endpoint} ({aws.region}): " + (f"PROBLEM {aws.problem}" if aws.problem else
          f"cluster {rb.params.aurora_cluster_id} " + ("exists" if aws.cluster else "does not exist yet")))
    if aurora is not None:
        print(f"aurora: {aurora.identity.describe()}")
    return Preflight(rb.params, source, inventory, aws, aurora, problem, restore)
