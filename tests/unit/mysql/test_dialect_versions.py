"""Every statement the dialect produces for a flavour avoids what that server lacks.

Each flavour's statements are collected by calling every statement-producing method of
:class:`Dialect` (a method the flavour refuses raises UnsupportedServer and produces nothing) and
checked against a list of constructs its version does not have: MySQL 5.7 has no window functions,
no ``APPLYING_TRANSACTION`` (5.7 Reference Manual, "The replication_applier_status_by_worker Table"),
no REPLICA/SOURCE statements (8.0.22/8.0.23), no ``SET PERSIST``; MySQL 8.4 removed the
SLAVE/MASTER statements; Aurora 2 has only the ``..._master`` procedure names, Aurora 8.4 only the
``..._source`` ones, and ``mysql.rds_set_binlog_source_ssl`` exists from Aurora 3.06 (AWS, "Configuring,
starting, and stopping binary log (binlog) replication").
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable

import pytest

from runbook_lib.core.errors import UnsupportedServer
from runbook_lib.mysql.dialect import Dialect, dialect_for
from runbook_lib.mysql.identity import ServerIdentity, flavor_of, parse_version
from runbook_lib.mysql.sql import Sql

GTID = "9bfd6532-ea72-3141-b8c1-b2217ac70769:12"
SHOW_CREATE = "CREATE DEFINER=`dba`@`%` FUNCTION `tax_for`(x INT) RETURNS int DETERMINISTIC RETURN x"

#: Every statement-producing method, with arguments.
CALLS: dict[str, Callable[[Dialect], object]] = {
    "show_replica_status": lambda d: d.show_replica_status(),
    "start_replica": lambda d: d.start_replica(),
    "stop_replica": lambda d: [d.stop_replica(), d.stop_replica("")],
    "reset_replica_all": lambda d: [d.reset_replica_all(), d.reset_replica_all("")],
    "change_source": lambda d: [d.change_source("h", 3306, "u", "p"),
                                d.change_source("h", 3306, "u", "p", get_public_key=True)],
    "skip_gtid_with_empty_transaction": lambda d: d.skip_gtid_with_empty_transaction(GTID),
    "add_gtid_purged": lambda d: d.add_gtid_purged(GTID),
    "session_binlog": lambda d: [d.session_binlog(False), d.session_binlog(True)],
    "kill_connection": lambda d: d.kill_connection(42),
    "show_binary_log_status": lambda d: d.show_binary_log_status(),
    "applier_worker_error": lambda d: d.applier_worker_error(),
    "sequence_runs": lambda d: d.sequence_runs("runbook.failover_rows", 1),
    "set_global": lambda d: d.set_global("binlog_format", "ROW"),
    "fresh_table_statistics": lambda d: d.fresh_table_statistics(),
    "set_external_source": lambda d: d.set_external_source("h", 3306, "u", "p"),
    "set_binlog_source_ssl": lambda d: d.set_binlog_source_ssl(True),
    "start_replication": lambda d: d.start_replication(),
    "stop_replication": lambda d: d.stop_replication(),
    "skip_repl_error": lambda d: d.skip_repl_error(),
    "skip_transaction_with_gtid": lambda d: d.skip_transaction_with_gtid(GTID),
    "reset_external_source": lambda d: d.reset_external_source(),
    "set_binlog_retention": lambda d: d.set_binlog_retention(24),
    "show_configuration": lambda d: d.show_configuration(),
    "create_replication_user": lambda d: [d.create_replication_user("r", "%", "pw", plugin)
                                          for plugin in ("mysql_native_password", "caching_sha2_password")],
    "alter_user_plugin": lambda d: d.alter_user_plugin("r", "%", "pw", "caching_sha2_password"),
    "grant_replication": lambda d: d.grant_replication("r", "%"),
    "drop_user": lambda d: d.drop_user("r", "%"),
    "create_routine_if_not_exists": lambda d: d.create_routine_if_not_exists(SHOW_CREATE),
    "gtid_purged": lambda d: d.gtid_purged("+" + GTID),
    "gtid_unsafe_logged": lambda d: d.gtid_unsafe_logged("2026-01-01 00:00:00"),
    "tablespace_files": lambda d: d.tablespace_files(),
    "encrypted_tablespaces": lambda d: d.encrypted_tablespaces(),
}

_STATEMENT_WORDS = r"\b(?:SHOW|START|STOP|RESET)\s+"
MISSING_BEFORE_80 = {
    "window function": r"\bOVER\s*\(", "APPLYING_TRANSACTION": r"APPLYING_TRANSACTION",
    "SET PERSIST": r"\bSET\s+PERSIST\b", "caching_sha2_password": r"caching_sha2_password",
    "GET_..._PUBLIC_KEY": r"\bGET_\w+_PUBLIC_KEY\b", "information_schema_stats_expiry": r"stats_expiry",
    "gtid_purged '+set'": r"gtid_purged\s*=", "CREATE ... IF NOT EXISTS routine": r"FUNCTION\s+IF\s+NOT\s+EXISTS",
}
MISSING_BEFORE_8022 = {"REPLICA statements": _STATEMENT_WORDS + r"REPLICA\b"}
MISSING_BEFORE_8023 = {"CHANGE REPLICATION SOURCE": r"CHANGE\s+REPLICATION\s+SOURCE", "SOURCE_ options": r"\bSOURCE_\w+\s*="}
MISSING_BEFORE_82 = {"SHOW BINARY LOG STATUS": r"SHOW\s+BINARY\s+LOG\s+STATUS"}
REMOVED_IN_84 = {"SLAVE statements": _STATEMENT_WORDS + r"SLAVE\b", "CHANGE MASTER": r"CHANGE\s+MASTER",
                 "MASTER_ options": r"\bMASTER_\w+\s*=", "SHOW MASTER STATUS": r"SHOW\s+MASTER\s+STATUS"}
AURORA2_LACKS = {"Aurora 3 procedure names": r"mysql\.rds_\w*_source\b|rds_set_source_auto_position",
                 "rds_set_binlog_source_ssl": r"rds_set_binlog_source_ssl",
                 "SET SESSION sql_log_bin (Aurora 2.12+: rds_disable_session_binlog)": r"SET\s+SESSION\s+sql_log_bin"}
AURORA_BEFORE_306_LACKS = {"rds_set_binlog_source_ssl": r"rds_set_binlog_source_ssl"}
AURORA84_LACKS = {"Aurora 2 procedure names": r"mysql\.rds_\w*master\w*"}
# SET SESSION sql_log_bin is documented on Aurora 3 and later for an account holding SESSION_VARIABLES_ADMIN
# (AWS "Configuring, starting, and stopping binary log (binlog) replication"): Dialect.session_binlog
# spells it there, and mysql.connection.keeps_out_of_binlog probes it before any use (refused: 1227).
NOT_ON_AURORA = {"privileged statements": r"CHANGE\s+(?:REPLICATION\s+SOURCE|MASTER)|\b(?:START|STOP|RESET)\s+"
                 r"(?:REPLICA|SLAVE)\b|SET\s+(?:GLOBAL|PERSIST)|GTID_NEXT"}


def ident(version: str, aurora: str = "") -> ServerIdentity:
    v = parse_version(version)
    return ServerIdentity(v, version, "", flavor_of(v, aurora), aurora)


FLAVOURS = {
    "MySQL 5.7": ident("5.7.44"), "MySQL 8.0.20": ident("8.0.20"), "MySQL 8.0.22": ident("8.0.22"),
    "MySQL 8.0.40": ident("8.0.40"), "MySQL 8.4": ident("8.4.3"), "MySQL 9.7": ident("9.7.4"),
    "Aurora 2": ident("5.7.40", "2.12.1"), "Aurora 3.05": ident("8.0.32", "3.05.2"),
    "Aurora 3.08": ident("8.0.39", "3.08.0"), "Aurora 8.4": ident("8.4.7", "8.4.7"),
}


def lacks(i: ServerIdentity) -> dict[str, str]:
    """What this server does not understand (name -> pattern)."""
    out: dict[str, str] = {}
    for since, missing in (((8, 0, 0), MISSING_BEFORE_80), ((8, 0, 22), MISSING_BEFORE_8022),
                           ((8, 0, 23), MISSING_BEFORE_8023), ((8, 2, 0), MISSING_BEFORE_82)):
        if i.version < since:
            out.update(missing)
    if i.version >= (8, 4, 0):
        out.update(REMOVED_IN_84)
    if i.is_aurora:
        out.update(NOT_ON_AURORA)
        if i.aurora_generation == 2:
            out.update(AURORA2_LACKS)
        elif i.aurora_release < (3, 6, 0):
            out.update(AURORA_BEFORE_306_LACKS)
        if i.aurora_generation == 8:
            out.update(AURORA84_LACKS)
    return out


def statements(d: Dialect) -> list[str]:
    out = []
    for call in CALLS.values():
        try:
            produced = call(d)
        except UnsupportedServer:
            continue                   # refused for this flavour: nothing is sent
        for one in produced if isinstance(produced, list) else [produced]:
            if one is not None:
                out.append(one.text if isinstance(one, Sql) else str(one))
    return out


def test_every_statement_method_is_covered():
    produces = {name for name, fn in inspect.getmembers(Dialect, inspect.isfunction)
                if not name.startswith("_") and re.fullmatch(r".*\bSql\b.*|str",
                                                             str(inspect.signature(fn).return_annotation))}
    produces -= {"status_field", "replication_auth_plugin"}      # names and plugins, not statements
    assert produces == set(CALLS)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_statements_avoid_what_the_flavour_lacks(flavour):
    i = FLAVOURS[flavour]
    texts = statements(dialect_for(i))
    assert len(texts) >= 10                       # the flavour's statements were really produced
    found = [(name, text) for text in texts for name, pattern in lacks(i).items()
             if re.search(pattern, text, re.IGNORECASE)]
    assert found == []


def test_the_checks_would_catch_the_old_statements():
    """The lists are not vacuous: the statements the runbook sent before this check trip them."""
    window = ("SELECT origin, MIN(seq) AS lo, MAX(seq) AS hi FROM (SELECT origin, seq, seq - ROW_NUMBER() OVER "
              "(PARTITION BY origin ORDER BY seq) AS grp FROM t WHERE run_id = %s) AS x GROUP BY origin, grp")
    worker = "SELECT APPLYING_TRANSACTION FROM performance_schema.replication_applier_status_by_worker"
    for text in (window, worker):
        assert any(re.search(p, text) for p in lacks(FLAVOURS["MySQL 5.7"]).values())
        assert any(re.search(p, text) for p in lacks(FLAVOURS["Aurora 2"]).values())
    assert re.search(lacks(FLAVOURS["Aurora 3.05"])["rds_set_binlog_source_ssl"], "CALL mysql.rds_set_binlog_source_ssl(1)")
    assert re.search(lacks(FLAVOURS["MySQL 8.4"])["SLAVE statements"], "START SLAVE")
