"""Server identity detection (recorded answers) and the version-aware statements of Dialect."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pymysql
import pytest

from runbook_lib.core.errors import ParameterError, UnsupportedServer
from runbook_lib.mysql.dialect import STATUS_COLUMNS, Dialect, dialect_for
from runbook_lib.mysql.identity import Flavor, ServerIdentity, detect_identity, parse_version
from runbook_lib.mysql.sql import Sql

IDENTITY_SQL = ("SELECT @@version AS version, @@version_comment AS version_comment, "
                "@@server_id AS server_id, @@server_uuid AS server_uuid")
AURORA_SQL = "SELECT @@aurora_version AS aurora_version"
SYSINFO_SQL = "SELECT value FROM mysql.rds_sysinfo WHERE name = 'aurora_version'"

# Errors exactly as a real MySQL 9.7.4 returned them through PyMySQL (see data/mysql97_errors.txt).
UNKNOWN_VARIABLE = pymysql.err.OperationalError(1193, "Unknown system variable 'aurora_version'")
NO_SYSINFO = pymysql.err.ProgrammingError(1146, "Table 'mysql.rds_sysinfo' doesn't exist")
SYSINFO_DENIED = pymysql.err.OperationalError(
    1142, "SELECT command denied to user 'limited'@'localhost' for table 'rds_sysinfo'")
MYSQL97 = [{"version": "9.7.4-2", "version_comment": "(Debian)", "server_id": 1,
            "server_uuid": "f5490ab2-e770-11f1-b41c-02fc00000001"}]


def recorded(answers: dict[str, Any]) -> Callable[[str], list[dict[str, Any]]]:
    """A query(sql) callable that replays recorded answers (rows, or the error the server raised)."""
    def query(sql: str) -> list[dict[str, Any]]:
        answer = answers[sql]
        if isinstance(answer, Exception):
            raise answer
        return answer
    return query


def identity(version: str, aurora: str = "") -> ServerIdentity:
    """Identity as detect_identity() builds it, for a version and an Aurora version."""
    answers: dict[str, Any] = {IDENTITY_SQL: [{"version": version, "version_comment": "x", "server_id": 7,
                                               "server_uuid": "3e11fa47-71ca-11e1-9e33-c80aa9429562"}]}
    answers[AURORA_SQL] = [{"aurora_version": aurora}] if aurora else UNKNOWN_VARIABLE
    answers[SYSINFO_SQL] = NO_SYSINFO
    return detect_identity(recorded(answers), role="test")


# --- detection ------------------------------------------------------------------

def test_detect_real_mysql_97() -> None:
    # recorded from a real 9.7.4 server: 1193 for @@aurora_version, 1146 for mysql.rds_sysinfo
    ident = detect_identity(recorded({IDENTITY_SQL: MYSQL97, AURORA_SQL: UNKNOWN_VARIABLE,
                                      SYSINFO_SQL: NO_SYSINFO}))
    assert ident.version == (9, 7, 4) and ident.version_text == "9.7.4-2" and ident.major == "9.7"
    assert ident.flavor is Flavor.MYSQL84_PLUS and not ident.is_aurora and ident.aurora_generation is None
    assert ident.server_id == 1 and ident.server_uuid == "f5490ab2-e770-11f1-b41c-02fc00000001"
    assert ident.describe() == "MySQL 9.7.4-2 (Debian), server_id 1, server_uuid f5490ab2-e770-11f1-b41c-02fc00000001"


def test_detect_mysql_when_rds_sysinfo_not_readable() -> None:
    ident = detect_identity(recorded({IDENTITY_SQL: MYSQL97, AURORA_SQL: UNKNOWN_VARIABLE,
                                      SYSINFO_SQL: SYSINFO_DENIED}))
    assert ident.flavor is Flavor.MYSQL84_PLUS


def test_detect_lab_aurora_stand_in() -> None:
    # recorded from a real 9.7.4 server given a mysql.rds_sysinfo row, as the lab's stand-in has
    ident = detect_identity(recorded({IDENTITY_SQL: MYSQL97, AURORA_SQL: UNKNOWN_VARIABLE,
                                      SYSINFO_SQL: [{"value": "3.08.0"}]}))
    assert ident.flavor is Flavor.AURORA3 and ident.aurora_version == "3.08.0" and ident.version == (9, 7, 4)
    assert ident.describe().startswith("Aurora MySQL 3.08.0 (MySQL 9.7.4-2)")


def test_detect_real_aurora_answers() -> None:
    # Not captured (no Aurora here): the shape AWS documents, @@aurora_version answering directly.
    query = recorded({IDENTITY_SQL: [{"version": "8.0.32", "version_comment": "Source distribution",
                                      "server_id": 1234567, "server_uuid": "9bfd6532-ea72-3141-b8c1-b2217ac70769"}],
                      AURORA_SQL: [{"aurora_version": "3.05.2"}]})
    ident = detect_identity(query)
    assert ident.flavor is Flavor.AURORA3 and ident.is_aurora and ident.aurora_generation == 3
    assert identity("5.7.12", "2.11.2").flavor is Flavor.AURORA2


@pytest.mark.parametrize("version, flavor", [
    ("5.7.44-log", Flavor.MYSQL57), ("8.0.21", Flavor.MYSQL80), ("8.0.40", Flavor.MYSQL80),
    ("8.3.0", Flavor.MYSQL80), ("8.4.3", Flavor.MYSQL84_PLUS), ("9.7.4-2", Flavor.MYSQL84_PLUS),
])
def test_flavor_by_version(version: str, flavor: Flavor) -> None:
    assert identity(version).flavor is flavor


@pytest.mark.parametrize("version, aurora", [("5.6.51", ""), ("5.6.10", "1.23.4"), ("8.0.32", "4.0.0")])
def test_unsupported_versions(version: str, aurora: str) -> None:
    with pytest.raises(UnsupportedServer, match=r"\[test\].*not supported"):
        identity(version, aurora)


def test_unexpected_errors_propagate() -> None:
    boom = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")
    with pytest.raises(pymysql.err.OperationalError):
        detect_identity(recorded({IDENTITY_SQL: MYSQL97, AURORA_SQL: boom}))
    with pytest.raises(pymysql.err.OperationalError):
        detect_identity(recorded({IDENTITY_SQL: MYSQL97, AURORA_SQL: UNKNOWN_VARIABLE, SYSINFO_SQL: boom}))


def test_parse_version() -> None:
    assert parse_version("9.7.4-2") == (9, 7, 4)
    assert parse_version("5.7.12-log") == (5, 7, 12)
    with pytest.raises(ValueError):
        parse_version("MariaDB")


# --- Sql ------------------------------------------------------------------------

def test_sql_shows_secrets_masked() -> None:
    sql = Sql("CREATE USER %s@%s IDENTIFIED BY %s", ("o'brien", "%", "s3cr3t"), secret_args=(2,))
    assert str(sql) == sql.shown() == "CREATE USER 'o\\'brien'@'%' IDENTIFIED BY '********'"
    assert "s3cr3t" not in repr(sql) and "s3cr3t" not in str(sql)
    assert sql.args[2] == "s3cr3t"            # the real value, for execution only
    assert Sql("SELECT %s + 1", (41,)).shown() == "SELECT 41 + 1"
    assert Sql("START REPLICA").shown() == "START REPLICA"


def test_sql_checks_placeholders() -> None:
    with pytest.raises(ValueError):
        Sql("SELECT %s", ())
    with pytest.raises(ValueError):
        Sql("SELECT %s", (1,), secret_args=(1,))
    assert Sql("SELECT 'a%%b' LIKE %s", ("x",)).shown() == "SELECT 'a%b' LIKE 'x'"


# --- statements by MySQL version --------------------------------------------------

@pytest.mark.parametrize("version, show, start, stop, reset, binlog", [
    ("5.7.44", "SHOW SLAVE STATUS", "START SLAVE", "STOP SLAVE", "RESET SLAVE ALL", "SHOW MASTER STATUS"),
    ("8.0.21", "SHOW SLAVE STATUS", "START SLAVE", "STOP SLAVE", "RESET SLAVE ALL", "SHOW MASTER STATUS"),
    ("8.0.22", "SHOW REPLICA STATUS", "START REPLICA", "STOP REPLICA", "RESET REPLICA ALL", "SHOW MASTER STATUS"),
    ("8.1.0", "SHOW REPLICA STATUS", "START REPLICA", "STOP REPLICA", "RESET REPLICA ALL", "SHOW MASTER STATUS"),
    ("8.2.0", "SHOW REPLICA STATUS", "START REPLICA", "STOP REPLICA", "RESET REPLICA ALL",
     "SHOW BINARY LOG STATUS"),
    ("9.7.4", "SHOW REPLICA STATUS", "START REPLICA", "STOP REPLICA", "RESET REPLICA ALL",
     "SHOW BINARY LOG STATUS"),
])
def test_native_statements(version: str, show: str, start: str, stop: str, reset: str, binlog: str) -> None:
    d = dialect_for(identity(version))
    assert [str(d.show_replica_status()), str(d.start_replica()), str(d.stop_replica()),
            str(d.reset_replica_all()), str(d.show_binary_log_status())] == [show, start, stop, reset, binlog]


def test_change_source_new_form() -> None:
    sql = dialect_for(identity("8.0.23")).change_source("db1.example", 3306, "repl", "pw!", get_public_key=True)
    assert sql.shown() == ("CHANGE REPLICATION SOURCE TO SOURCE_HOST = 'db1.example', SOURCE_PORT = 3306, "
                           "SOURCE_USER = 'repl', SOURCE_PASSWORD = '********', SOURCE_AUTO_POSITION = 1, "
                           "SOURCE_SSL = 1, SOURCE_CONNECT_RETRY = 60, SOURCE_RETRY_COUNT = 86400, "
                           "GET_SOURCE_PUBLIC_KEY = 1")
    assert sql.args[3] == "pw!" and sql.secret_args == (3,)


def test_change_source_old_form() -> None:
    sql = dialect_for(identity("8.0.22")).change_source("h", 3307, "u", "p", ssl=False, connect_retry=5,
                                                         retry_count=10)
    assert sql.shown() == ("CHANGE MASTER TO MASTER_HOST = 'h', MASTER_PORT = 3307, MASTER_USER = 'u', "
                           "MASTER_PASSWORD = '********', MASTER_AUTO_POSITION = 1, MASTER_SSL = 0, "
                           "MASTER_CONNECT_RETRY = 5, MASTER_RETRY_COUNT = 10")
    with pytest.raises(UnsupportedServer, match="GET_MASTER_PUBLIC_KEY"):
        dialect_for(identity("5.7.44")).change_source("h", 3306, "u", "p", get_public_key=True)


@pytest.mark.parametrize("kwargs", [{"port": 0}, {"port": 70000}, {"port": "3306"}, {"connect_retry": 0}])
def test_change_source_rejects_bad_numbers(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"host": "h", "port": 3306, "user": "u", "password": "p"} | kwargs
    with pytest.raises(ParameterError):
        dialect_for(identity("9.7.4")).change_source(**args)


def test_skip_gtid_with_empty_transaction() -> None:
    gtid = "F5490AB2-E770-11F1-B41C-02FC00000001:9"
    steps = dialect_for(identity("9.7.4")).skip_gtid_with_empty_transaction(gtid)
    assert [s.shown() for s in steps] == ["SET GTID_NEXT = 'f5490ab2-e770-11f1-b41c-02fc00000001:9'",
                                          "BEGIN", "COMMIT", "SET GTID_NEXT = 'AUTOMATIC'"]
    tagged = "f5490ab2-e770-11f1-b41c-02fc00000001:hb:3"
    assert dialect_for(identity("8.4.0")).skip_gtid_with_empty_transaction(tagged)[0].args == (tagged,)
    with pytest.raises(UnsupportedServer, match="8.4"):
        dialect_for(identity("8.0.40")).skip_gtid_with_empty_transaction(tagged)
    with pytest.raises(ParameterError, match="exactly one GTID"):
        dialect_for(identity("9.7.4")).skip_gtid_with_empty_transaction("f5490ab2-e770-11f1-b41c-02fc00000001:1-2")
    with pytest.raises(ParameterError):
        dialect_for(identity("9.7.4")).skip_gtid_with_empty_transaction("garbage")


def test_add_gtid_purged() -> None:
    sql = dialect_for(identity("9.7.4")).add_gtid_purged("F5490AB2-E770-11F1-B41C-02FC00000001:3-5,"
                                                         "f5490ab2-e770-11f1-b41c-02fc00000001:7")
    assert sql.shown() == "SET GLOBAL gtid_purged = '+f5490ab2-e770-11f1-b41c-02fc00000001:3-5:7'"
    with pytest.raises(UnsupportedServer, match="8.0"):
        dialect_for(identity("5.7.44")).add_gtid_purged("f5490ab2-e770-11f1-b41c-02fc00000001:3")
    with pytest.raises(UnsupportedServer, match="Aurora"):
        dialect_for(identity("8.0.23", "3.08.0")).add_gtid_purged("f5490ab2-e770-11f1-b41c-02fc00000001:3")
    for bad in ("", "garbage"):
        with pytest.raises(ParameterError):
            dialect_for(identity("9.7.4")).add_gtid_purged(bad)


def test_rds_gtid_purged_from_aurora_3_04_only() -> None:
    """Aurora User Guide, "Replicating transactions using GTIDs": mysql.rds_gtid_purged(gtid_set), Aurora
    MySQL 3.04 and higher; '+set' appends to gtid_purged."""
    gtids = "F5490AB2-E770-11F1-B41C-02FC00000001:1-5,f5490ab2-e770-11f1-b41c-02fc00000001:9"
    for aurora in ("3.04.0", "3.08.0", "3.12.0"):
        d = dialect_for(identity("8.0.39", aurora))
        assert d.has_rds_gtid_purged
        assert d.gtid_purged(gtids).shown() == ("CALL mysql.rds_gtid_purged("
                                                "'+f5490ab2-e770-11f1-b41c-02fc00000001:1-5:9')")
        assert d.gtid_purged("+" + gtids).args == d.gtid_purged(gtids).args
    for version, aurora in (("8.0.26", "3.03.1"), ("5.7.12", "2.11.6"), ("5.7.44", "2.12.5"), ("9.7.4", "")):
        d = dialect_for(identity(version, aurora))
        assert not d.has_rds_gtid_purged
        with pytest.raises(UnsupportedServer, match="3.04" if aurora else "only on Aurora"):
            d.gtid_purged(gtids)
    with pytest.raises(UnsupportedServer, match="gtid_purged"):     # the native way says where to go
        dialect_for(identity("8.0.39", "3.08.0")).add_gtid_purged(gtids)
    for bad in ("", "+", "garbage"):
        with pytest.raises(ParameterError):
            dialect_for(identity("8.0.39", "3.08.0")).gtid_purged(bad)


def test_tablespace_queries_follow_the_version() -> None:
    """Where a physical copy finds the data files: information_schema.FILES from 8.0 (run on 9.7 by the
    preflight drills' lab test), INNODB_SYS_DATAFILES on 5.7; encryption per tablespace from 8.0.13."""
    assert "information_schema.FILES" in dialect_for(identity("9.7.4")).tablespace_files().text
    assert "INNODB_SYS_DATAFILES" in dialect_for(identity("5.7.44")).tablespace_files().text
    assert "INNODB_TABLESPACES" in dialect_for(identity("8.0.13")).encrypted_tablespaces().text
    assert dialect_for(identity("8.0.12")).encrypted_tablespaces() is None
    assert dialect_for(identity("5.7.44")).encrypted_tablespaces() is None


def test_status_field() -> None:
    assert dialect_for(identity("8.0.21")).status_field("seconds_behind") == "Seconds_Behind_Master"
    assert dialect_for(identity("9.7.4")).status_field("seconds_behind") == "Seconds_Behind_Source"
    assert dialect_for(identity("5.7.44")).status_field("executed_gtid_set") == "Executed_Gtid_Set"
    assert all(1 <= len(v) <= 2 for v in STATUS_COLUMNS.values())


# --- Aurora procedures by generation -------------------------------------------------

AURORA2 = identity("5.7.12", "2.11.2")
AURORA3 = identity("8.0.32", "3.05.2")
LAB_STAND_IN = identity("9.7.4-2", "3.08.0")


@pytest.mark.parametrize("ident, set_source, reset", [
    (AURORA2, "mysql.rds_set_external_master_with_auto_position", "mysql.rds_reset_external_master"),
    (AURORA3, "mysql.rds_set_external_source_with_auto_position", "mysql.rds_reset_external_source"),
    (LAB_STAND_IN, "mysql.rds_set_external_source_with_auto_position", "mysql.rds_reset_external_source"),
])
def test_aurora_procedures(ident: ServerIdentity, set_source: str, reset: str) -> None:
    d = dialect_for(ident, role="aurora")
    sql = d.set_external_source("10.0.0.5", 3306, "repl", "Rep#12345")
    assert sql.shown() == f"CALL {set_source}('10.0.0.5', 3306, 'repl', '********', 0)"   # ssl_encryption: 0
    assert "Rep#12345" in sql.args
    assert str(d.reset_external_source()) == f"CALL {reset}"
    assert str(d.start_replication()) == "CALL mysql.rds_start_replication"
    assert str(d.stop_replication()) == "CALL mysql.rds_stop_replication"
    assert str(d.skip_repl_error()) == "CALL mysql.rds_skip_repl_error"
    assert str(d.show_configuration()) == "CALL mysql.rds_show_configuration"
    assert str(d.skip_transaction_with_gtid("9bfd6532-ea72-3141-b8c1-b2217ac70769:12")) == \
        "CALL mysql.rds_skip_transaction_with_gtid('9bfd6532-ea72-3141-b8c1-b2217ac70769:12')"
    assert str(d.set_binlog_retention(2160)) == "CALL mysql.rds_set_configuration('binlog retention hours', 2160)"
    with pytest.raises(ParameterError, match="binlog retention hours"):
        d.set_binlog_retention(2161)
    for native in (d.start_replica, d.stop_replica, d.reset_replica_all,
                   lambda: d.change_source("h", 1, "u", "p"),
                   lambda: d.skip_gtid_with_empty_transaction("9bfd6532-ea72-3141-b8c1-b2217ac70769:1")):
        with pytest.raises(UnsupportedServer, match=r"\[aurora\].*not allowed on Aurora") as info:
            native()
        assert "mysql.rds_" in info.value.hint


def test_statements_on_stand_in_follow_mysql_version() -> None:
    d = dialect_for(LAB_STAND_IN)
    assert str(d.show_replica_status()) == "SHOW REPLICA STATUS"
    assert str(d.show_binary_log_status()) == "SHOW BINARY LOG STATUS"
    assert str(dialect_for(AURORA2).show_replica_status()) == "SHOW SLAVE STATUS"
    assert str(dialect_for(AURORA3).show_binary_log_status()) == "SHOW MASTER STATUS"


def test_aurora2_limits() -> None:
    old = dialect_for(identity("5.7.12", "2.10.2"))
    assert old.set_binlog_retention(168).args == (168,)
    with pytest.raises(ParameterError):
        old.set_binlog_retention(169)


@pytest.mark.parametrize("ident, has", [
    (AURORA2, False), (identity("5.7.44", "2.12.1"), False), (AURORA3, False),
    (identity("8.0.34", "3.06.0"), True), (LAB_STAND_IN, True), (identity("8.4.7", "8.4.7"), True),
])
def test_binlog_source_ssl_from_aurora_3_06(ident: ServerIdentity, has: bool) -> None:
    # AWS, "Configuring, starting, and stopping binary log (binlog) replication": ssl_encryption is "not
    # currently implemented"; mysql.rds_set_binlog_source_ssl is "supported for Aurora MySQL version 3.06 and higher".
    d = dialect_for(ident, role="aurora")
    assert d.sets_binlog_source_ssl is has
    if has:
        assert (str(d.set_binlog_source_ssl(True)), str(d.set_binlog_source_ssl(False))) == (
            "CALL mysql.rds_set_binlog_source_ssl(1)", "CALL mysql.rds_set_binlog_source_ssl(0)")
    else:
        with pytest.raises(UnsupportedServer, match="3.06"):
            d.set_binlog_source_ssl(True)
    with pytest.raises(UnsupportedServer, match="only on Aurora"):
        dialect_for(identity("8.0.40")).set_binlog_source_ssl(True)


def test_procedures_refused_on_mysql() -> None:
    d = dialect_for(identity("8.0.40"), role="source")
    with pytest.raises(UnsupportedServer, match=r"\[source\] mysql.rds_start_replication exists only on Aurora"):
        d.start_replication()
    with pytest.raises(UnsupportedServer):
        d.set_binlog_retention(24)


# --- replication accounts -----------------------------------------------------------

@pytest.mark.parametrize("ident, plugin", [
    (identity("5.7.44"), "mysql_native_password"), (AURORA2, "mysql_native_password"),
    (identity("8.0.40"), "caching_sha2_password"), (AURORA3, "caching_sha2_password"),
    (identity("9.7.4"), "caching_sha2_password"),
])
def test_replication_user(ident: ServerIdentity, plugin: str) -> None:
    d = dialect_for(ident)
    assert d.replication_auth_plugin() == plugin
    sql = d.create_replication_user("replicator", "%", "Rep#12345")
    assert sql.shown() == f"CREATE USER IF NOT EXISTS 'replicator'@'%' IDENTIFIED WITH {plugin} BY '********'"
    assert sql.args == ("replicator", "%", "Rep#12345") and sql.secret_args == (2,)
    assert d.grant_replication("replicator", "%").shown() == \
        "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'replicator'@'%'"
    assert d.drop_user("replicator", "%").shown() == "DROP USER IF EXISTS 'replicator'@'%'"


def test_replication_user_with_a_chosen_plugin() -> None:
    d = dialect_for(identity("8.0.40"))
    assert d.create_replication_user("r", "%", "pw", "mysql_native_password").shown() == \
        "CREATE USER IF NOT EXISTS 'r'@'%' IDENTIFIED WITH mysql_native_password BY '********'"
    assert d.alter_user_plugin("r", "%", "pw", "mysql_native_password").shown() == \
        "ALTER USER 'r'@'%' IDENTIFIED WITH mysql_native_password BY '********'"
    with pytest.raises(ParameterError):
        d.create_replication_user("r", "%", "pw", "sha256_password")
    with pytest.raises(UnsupportedServer):
        dialect_for(identity("5.7.44")).create_replication_user("r", "%", "pw", "caching_sha2_password")


def test_auth_plugin_for_another_source() -> None:
    assert dialect_for(identity("9.7.4")).replication_auth_plugin(AURORA2) == "mysql_native_password"


def test_dialect_is_a_value() -> None:
    assert dialect_for(AURORA3) == Dialect(AURORA3, "server")


def test_session_binlog_and_kill() -> None:
    mysql, aurora3, aurora2 = (dialect_for(identity("9.7.4")), dialect_for(identity("8.0.39", "3.08.0")),
                               dialect_for(identity("5.7.12", "2.12.1")))
    assert str(mysql.session_binlog(False)) == "SET SESSION sql_log_bin = 0"
    assert str(mysql.session_binlog(True)) == "SET SESSION sql_log_bin = 1"
    assert str(mysql.kill_connection(42)) == "KILL CONNECTION 42"
    assert str(aurora3.kill_connection(42)) == "KILL CONNECTION 42"
    assert str(aurora2.kill_connection(42)) == "CALL mysql.rds_kill(42)"
    with pytest.raises(ParameterError):
        mysql.kill_connection(0)


@pytest.mark.parametrize("version, aurora, way, off, on", [
    ("9.7.4", "", "sql_log_bin", "SET SESSION sql_log_bin = 0", "SET SESSION sql_log_bin = 1"),
    ("5.7.44", "", "sql_log_bin", "SET SESSION sql_log_bin = 0", "SET SESSION sql_log_bin = 1"),
    # Aurora 3: only with SESSION_VARIABLES_ADMIN (the server says no to the master user: probed)
    ("8.0.39", "3.08.0", "sql_log_bin", "SET SESSION sql_log_bin = 0", "SET SESSION sql_log_bin = 1"),
    ("8.4.7", "8.4.7", "sql_log_bin", "SET SESSION sql_log_bin = 0", "SET SESSION sql_log_bin = 1"),
    # Aurora 2.12+: the documented procedures
    ("5.7.40", "2.12.0", "procedure", "CALL mysql.rds_disable_session_binlog", "CALL mysql.rds_enable_session_binlog"),
    ("5.7.40", "2.12.1", "procedure", "CALL mysql.rds_disable_session_binlog", "CALL mysql.rds_enable_session_binlog"),
    ("5.7.12", "2.11.5", "", None, None),             # before 2.12: no way at all
])
def test_session_binlog_per_version(version: str, aurora: str, way: str, off: str | None, on: str | None) -> None:
    d = dialect_for(identity(version, aurora))
    assert d.session_binlog_way == way
    if off is None:
        with pytest.raises(UnsupportedServer, match="needs Aurora MySQL 2.12 or later"):
            d.session_binlog(False)
    else:
        assert (str(d.session_binlog(False)), str(d.session_binlog(True))) == (off, on)
