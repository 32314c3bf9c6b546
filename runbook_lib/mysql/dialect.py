"""How does this server spell replication?  (Which server it is:
:mod:`runbook_lib.mysql.identity`.)

The one module that spells ``SLAVE``/``MASTER``/``REPLICA``/``SOURCE_`` statements and the
``mysql.rds_*`` procedure names.  Statements follow the server's real MySQL version (8.0.22:
``SHOW REPLICA STATUS``, ``START/STOP REPLICA``; 8.0.23: ``CHANGE REPLICATION SOURCE TO``; 8.2:
``SHOW BINARY LOG STATUS``; the old forms are gone from 8.4), procedure names follow the Aurora
generation (2: ``..._master...``, 3: ``..._source...``).  Every statement is an :class:`Sql`:
text with ``%s`` placeholders for PyMySQL, its arguments, and which of them are secret.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymysql.converters import escape_item

from runbook_lib.core.errors import ParameterError, UnsupportedServer
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.identity import (
    ServerIdentity,
)

_VARIABLE_NAME = re.compile(r"[a-z][a-z0-9_]*")

#: First MySQL version with ``CREATE FUNCTION|PROCEDURE IF NOT EXISTS``.
ROUTINE_IF_NOT_EXISTS_SINCE = (8, 0, 29)
ROUTINES_BY_HAND = (
    "recreate the routines by hand in a quiet window, from SHOW CREATE FUNCTION/PROCEDURE on the source: "
    "either create each on Aurora (its CREATE replicates to the source, where the routine exists, and stops "
    "the source's replica with error 1304: skip that one transaction on the source with the "
    "troubleshooting notebook, step fix:<channel>), or DROP ... IF EXISTS and CREATE it again on the source "
    "(both replicate; the source lacks the routine for that moment)")
_QUOTED = r"(?:`(?:[^`]|``)*`|'(?:[^']|'')*'|[^\s@`']+)"
_ROUTINE_HEAD = re.compile(rf"(?P<head>\s*CREATE\s+(?:DEFINER\s*=\s*{_QUOTED}(?:\s*@\s*{_QUOTED})?\s+)?"
                           r"(?:FUNCTION|PROCEDURE)\s+)(?P<exists>IF\s+NOT\s+EXISTS\b)?", re.IGNORECASE)

#: Authentication plugins a replication account may use.
AUTH_PLUGINS = ("caching_sha2_password", "mysql_native_password")
#: First Aurora version with ``mysql.rds_set_binlog_source_ssl`` (AWS, "Configuring, starting, and
#: stopping binary log (binlog) replication": "supported for Aurora MySQL version 3.06 and higher").
BINLOG_SOURCE_SSL_SINCE = (3, 6, 0)

#: Aurora's largest ``binlog retention hours`` (Aurora 2.11+ and 3); older Aurora 2 allowed 168.
AURORA_MAX_BINLOG_RETENTION_HOURS = 2160
#: First Aurora MySQL release with ``mysql.rds_gtid_purged`` (Aurora User Guide, "Replicating
#: transactions using GTIDs": "supported for Aurora MySQL version 3.04 and higher").
RDS_GTID_PURGED_SINCE = (3, 4, 0)


@dataclass(frozen=True, repr=False)
class Sql:
    """One statement: ``text`` with ``%s`` placeholders, ``args``, and which args are secret.

    ``str()``/``shown()`` is what a plan displays (secrets as ``'********'``); only
    :meth:`Server.execute` uses the real ``args``.
    """

    text: str
    args: tuple[Any, ...] = ()
    secret_args: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        placeholders = re.findall(r"%[%s]", self.text).count("%s")
        if placeholders != len(self.args):
            raise ValueError(f"{self.text!r} has {placeholders} placeholders for {len(self.args)} args")
        if any(not 0 <= i < len(self.args) for i in self.secret_args):
            raise ValueError(f"secret_args {self.secret_args} out of range for {len(self.args)} args")

    def shown(self) -> str:
        if not self.args:
            return self.text
        return self.text % tuple("'********'" if i in self.secret_args else escape_item(arg, "utf8mb4")
                                 for i, arg in enumerate(self.args))

    __str__ = shown

    def __repr__(self) -> str:
        return f"Sql({self.shown()!r})"


#: Status column names, new spelling (8.0.22+) first; used by :mod:`runbook_lib.mysql.status`.
STATUS_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "channel": ("Channel_Name",),
    "source_host": ("Source_Host", "Master_Host"),
    "source_port": ("Source_Port", "Master_Port"),
    "source_user": ("Source_User", "Master_User"),
    "source_uuid": ("Source_UUID", "Master_UUID"),
    "source_server_id": ("Source_Server_Id", "Master_Server_Id"),
    "io_running": ("Replica_IO_Running", "Slave_IO_Running"),
    "sql_running": ("Replica_SQL_Running", "Slave_SQL_Running"),
    "io_state": ("Replica_IO_State", "Slave_IO_State"),
    "sql_state": ("Replica_SQL_Running_State", "Slave_SQL_Running_State"),
    "last_io_errno": ("Last_IO_Errno",),
    "last_io_error": ("Last_IO_Error",),
    "last_io_error_timestamp": ("Last_IO_Error_Timestamp",),
    "last_sql_errno": ("Last_SQL_Errno",),
    "last_sql_error": ("Last_SQL_Error",),
    "last_sql_error_timestamp": ("Last_SQL_Error_Timestamp",),
    "seconds_behind": ("Seconds_Behind_Source", "Seconds_Behind_Master"),
    "retrieved_gtid_set": ("Retrieved_Gtid_Set",),
    "executed_gtid_set": ("Executed_Gtid_Set",),
    "auto_position": ("Auto_Position",),
    "connect_retry": ("Connect_Retry",),
    "ssl_allowed": ("Source_SSL_Allowed", "Master_SSL_Allowed"),
}


def replication_auth_plugin(source: ServerIdentity) -> str:
    """Authentication plugin for a replication account on *source* (5.7: native; 8.0+: sha2)."""
    return "mysql_native_password" if source.version < (8, 0, 0) else "caching_sha2_password"


def _int_param(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ParameterError(name, f"must be an integer from {low} to {high}, not {value!r}")
    return value


@dataclass(frozen=True)
class Dialect:
    """Version-aware statements for one server.  Build it with :func:`dialect_for`."""

    identity: ServerIdentity
    role: str = "server"

    # --- helpers ------------------------------------------------------------

    @property
    def _replica_words(self) -> bool:
        return self.identity.version >= (8, 0, 22)

    def _native(self, what: str, aurora_way: str) -> None:
        if self.identity.is_aurora:
            raise UnsupportedServer(self.role, f"{what} is not allowed on Aurora MySQL",
                                    hint=f"on Aurora call the mysql.rds_* procedure: Dialect.{aurora_way}")

    def _proc(self, gen2: str, gen3: str | None = None) -> str:
        generation = self.identity.aurora_generation
        if generation is None:
            raise UnsupportedServer(self.role, f"mysql.{gen3 or gen2} exists only on Aurora MySQL "
                                    f"(this is {self.identity.describe()})",
                                    hint="use the native statement of this Dialect instead")
        return f"mysql.{gen2 if generation == 2 else gen3 or gen2}"

    def status_field(self, name: str) -> str:
        """Column of SHOW ... STATUS on this server for a :data:`STATUS_COLUMNS` field name."""
        names = STATUS_COLUMNS[name]
        return names[0] if self._replica_words or len(names) == 1 else names[1]

    # --- native replication -------------------------------------------------

    def show_replica_status(self) -> Sql:
        return Sql("SHOW REPLICA STATUS" if self._replica_words else "SHOW SLAVE STATUS")

    def start_replica(self) -> Sql:
        self._native("START REPLICA", "start_replication()")
        return Sql("START REPLICA" if self._replica_words else "START SLAVE")

    def stop_replica(self, channel: str | None = None) -> Sql:
        """``STOP REPLICA``; with *channel* (``''`` is the default channel) only that channel's threads."""
        self._native("STOP REPLICA", "stop_replication()")
        return _for_channel("STOP REPLICA" if self._replica_words else "STOP SLAVE", channel)

    def reset_replica_all(self, channel: str | None = None) -> Sql:
        """``RESET REPLICA ALL``: forget the source.  Without *channel* it resets EVERY channel of a
        multi-source replica; give the channel (``''`` is the default one) to leave the others alone."""
        self._native("RESET REPLICA ALL", "reset_external_source()")
        return _for_channel("RESET REPLICA ALL" if self._replica_words else "RESET SLAVE ALL", channel)

    def change_source(self, host: str, port: int, user: str, password: str, *, auto_position: bool = True,
                      ssl: bool = True, connect_retry: int = 60, retry_count: int = 86400,
                      get_public_key: bool = False) -> Sql:
        """Point this (native MySQL) replica at a source, by GTID auto-position."""
        self._native("CHANGE REPLICATION SOURCE", "set_external_source()")
        _int_param("port", port, 1, 65535)
        _int_param("connect_retry", connect_retry, 1, 31536000)
        _int_param("retry_count", retry_count, 0, 31536000)
        word = "SOURCE" if self.identity.version >= (8, 0, 23) else "MASTER"
        head = ("CHANGE REPLICATION SOURCE TO" if word == "SOURCE" else "CHANGE MASTER TO")
        parts = [f"{word}_HOST = %s", f"{word}_PORT = %s", f"{word}_USER = %s", f"{word}_PASSWORD = %s",
                 f"{word}_AUTO_POSITION = {int(auto_position)}", f"{word}_SSL = {int(ssl)}",
                 f"{word}_CONNECT_RETRY = %s", f"{word}_RETRY_COUNT = %s"]
        if get_public_key:
            if self.identity.version < (8, 0, 0):
                raise UnsupportedServer(self.role, "GET_MASTER_PUBLIC_KEY does not exist before MySQL 8.0",
                                        hint="use ssl=True for the replication connection")
            parts.append(f"GET_{word}_PUBLIC_KEY = 1")
        return Sql(f"{head} " + ", ".join(parts),
                   (host, port, user, password, connect_retry, retry_count), secret_args=(3,))

    def skip_gtid_with_empty_transaction(self, gtid: str) -> list[Sql]:
        """Skip one transaction on a native replica: commit an empty one under its GTID.

        Run the statements in order on one session, with the replica's SQL thread stopped.
        """
        self._native("SET GTID_NEXT", "skip_transaction_with_gtid()")
        one = _single_gtid(gtid)
        if one.count(":") > 1 and self.identity.version < (8, 4, 0):
            raise UnsupportedServer(self.role, f"tagged GTID {one} needs MySQL 8.4 or later")
        return [Sql("SET GTID_NEXT = %s", (one,)), Sql("BEGIN"), Sql("COMMIT"),
                Sql("SET GTID_NEXT = 'AUTOMATIC'")]

    def add_gtid_purged(self, gtids: str) -> Sql:
        """Declare transactions applied without running them: ``SET GLOBAL gtid_purged = '+set'``
        (8.0+).  The set must not overlap ``gtid_executed``.  For transactions brought over another
        way (e.g. rows repaired after the other side purged its binary logs), so that auto-position
        stops asking for them.  5.7 only accepts it on an empty ``gtid_executed``: commit one empty
        transaction per GTID there (:meth:`skip_gtid_with_empty_transaction`); Aurora refuses it
        (no SYSTEM_VARIABLES_ADMIN): :meth:`gtid_purged` on 3.04+, else :meth:`skip_transaction_with_gtid` once
        per GTID."""
        self._native("SET GLOBAL gtid_purged", "gtid_purged() on 3.04+, else skip_transaction_with_gtid() per GTID")
        if self.identity.version < (8, 0, 0):
            raise UnsupportedServer(self.role, "adding to gtid_purged needs MySQL 8.0 or later",
                                    hint="commit one empty transaction per GTID instead")
        try:
            wanted = GtidSet.parse(gtids)
        except ValueError as e:
            raise ParameterError("gtids", str(e)) from e
        if not wanted:
            raise ParameterError("gtids", "is empty: nothing to declare")
        return Sql("SET GLOBAL gtid_purged = %s", ("+" + str(wanted),))

    def session_binlog(self, on: bool) -> Sql:
        """Turn binary logging on/off for this session only (``sql_log_bin``), e.g. so that a change
        stays on this server and does not replicate.  Needs SUPER, SYSTEM_VARIABLES_ADMIN or
        SESSION_VARIABLES_ADMIN: Aurora's master user has none of them in either generation, so on
        Aurora every statement of the master user is binary-logged and replicates."""
        if self.identity.is_aurora:
            raise UnsupportedServer(self.role, "SET SESSION sql_log_bin is not allowed on Aurora MySQL",
                                    hint="every statement on Aurora is binary-logged: plan for it to replicate")
        return Sql(f"SET SESSION sql_log_bin = {int(bool(on))}")

    def kill_connection(self, thread_id: int) -> Sql:
        """End another session: ``KILL CONNECTION`` (Aurora 3's master user may, with CONNECTION_ADMIN);
        Aurora 2's master user has no such privilege and calls ``mysql.rds_kill``."""
        _int_param("thread_id", thread_id, 1, 2**64 - 1)
        if self.identity.aurora_generation == 2:
            return Sql(f"CALL {self._proc('rds_kill')}(%s)", (thread_id,))
        return Sql("KILL CONNECTION %s", (thread_id,))

    def show_binary_log_status(self) -> Sql:
        """File, Position, Executed_Gtid_Set of this server's binary log."""
        return Sql("SHOW BINARY LOG STATUS" if self.identity.version >= (8, 2, 0) else "SHOW MASTER STATUS")

    def gtid_unsafe_logged(self, since: str) -> Sql | None:
        """GTID-unsafe statements logged since ``since`` (server time) from performance_schema.error_log
        (MySQL 8.0.22+, "The error_log Table"); None before 8.0.22, where only the error log file has them."""
        if self.identity.version < (8, 0, 22):
            return None
        return Sql("SELECT LOGGED, THREAD_ID, ERROR_CODE, DATA FROM performance_schema.error_log WHERE LOGGED >= %s "
                   "AND DATA LIKE 'Statement violates GTID consistency%%' ORDER BY LOGGED", (since,))
    def tablespace_files(self) -> Sql:
        """InnoDB tablespaces and their data files (columns ``name``, ``path``, ``kind``)."""
        if self.identity.version >= (8, 0, 0):
            return Sql("SELECT TABLESPACE_NAME AS name, FILE_NAME AS path, FILE_TYPE AS kind "
                       "FROM information_schema.FILES WHERE ENGINE = 'InnoDB' AND FILE_TYPE <> 'TEMPORARY'")
        return Sql("SELECT t.NAME AS name, d.PATH AS path, 'TABLESPACE' AS kind "
                   "FROM information_schema.INNODB_SYS_DATAFILES d "
                   "JOIN information_schema.INNODB_SYS_TABLESPACES t USING (SPACE)")

    def encrypted_tablespaces(self) -> Sql | None:
        """Encrypted InnoDB tablespaces (8.0.13+); None where only the tables' CREATE_OPTIONS tell."""
        if self.identity.version >= (8, 0, 13):
            return Sql("SELECT NAME AS name FROM information_schema.INNODB_TABLESPACES WHERE ENCRYPTION = 'Y' "
                       "ORDER BY NAME")
        return None
    def applier_worker_error(self) -> Sql:
        """The default channel's latest applier worker error: columns n (errno), m (message), g (its GTID).

        ``APPLYING_TRANSACTION`` is 8.0+; 5.7's table has ``LAST_SEEN_TRANSACTION`` (the transaction the
        worker last saw, which is the one it failed on) -- MySQL 5.7 Reference Manual, "The
        replication_applier_status_by_worker Table"."""
        gtid = "APPLYING_TRANSACTION" if self.identity.version >= (8, 0, 0) else "LAST_SEEN_TRANSACTION"
        return Sql(f"SELECT LAST_ERROR_NUMBER AS n, LAST_ERROR_MESSAGE AS m, {gtid} AS g "
                   "FROM performance_schema.replication_applier_status_by_worker "
                   "WHERE CHANNEL_NAME = '' AND LAST_ERROR_NUMBER <> 0 ORDER BY LAST_ERROR_TIMESTAMP DESC LIMIT 1")

    def sequence_runs(self, table: str, run_id: int) -> Sql:
        """Runs of consecutive ``seq`` per ``origin`` among the rows of one ``run_id`` (argument):
        columns origin, lo, hi (*table* is trusted, already quoted).  8.0+ numbers the rows with a window function; 5.7 has none and finds
        each run's first row (no seq - 1) and its end (the first row from there with no seq + 1)."""
        if self.identity.version >= (8, 0, 0):
            return Sql(f"SELECT origin, MIN(seq) AS lo, MAX(seq) AS hi FROM (SELECT origin, seq, seq - ROW_NUMBER() "
                       f"OVER (PARTITION BY origin ORDER BY seq) AS grp FROM {table} WHERE run_id = %s) AS x "
                       "GROUP BY origin, grp", (run_id,))
        return Sql(f"SELECT s.origin, s.seq AS lo, (SELECT MIN(e.seq) FROM {table} e WHERE e.run_id = s.run_id "
                   "AND e.origin = s.origin AND e.seq >= s.seq AND NOT EXISTS (SELECT 1 FROM "
                   f"{table} n WHERE n.run_id = e.run_id AND n.origin = e.origin AND n.seq = e.seq + 1)) AS hi "
                   f"FROM {table} s WHERE s.run_id = %s AND NOT EXISTS (SELECT 1 FROM {table} p "
                   "WHERE p.run_id = s.run_id AND p.origin = s.origin AND p.seq = s.seq - 1)",
                   (run_id,))

    # --- server settings (self-managed MySQL) --------------------------------

    @property
    def persists_settings(self) -> bool:
        """``SET PERSIST`` exists (MySQL 8.0+): a dynamic change survives a restart without my.cnf."""
        return self.identity.version >= (8, 0, 0)

    @property
    def binlog_expire_variable(self) -> str:
        """The binary log retention variable: seconds from 8.0, days (``expire_logs_days``) on 5.7."""
        return "binlog_expire_logs_seconds" if self.identity.version >= (8, 0, 0) else "expire_logs_days"

    def set_global(self, name: str, value: str | int) -> Sql:
        """Change a dynamic global variable: ``SET PERSIST`` on 8.0+, ``SET GLOBAL`` on 5.7.

        On 5.7 the change is lost at the next restart unless my.cnf says the same.  Aurora refuses
        both (no SYSTEM_VARIABLES_ADMIN): its settings live in the DB cluster parameter group.
        """
        if self.identity.is_aurora:
            raise UnsupportedServer(self.role, f"SET GLOBAL {name} is not allowed on Aurora MySQL",
                                    hint="change it in the DB cluster parameter group instead")
        if not _VARIABLE_NAME.fullmatch(name):
            raise ParameterError("variable", f"{name!r} is not a system variable name")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ParameterError(name, f"expected a str or int value, not {value!r}")
        scope = "PERSIST" if self.persists_settings else "GLOBAL"
        return Sql(f"SET {scope} {name} = %s", (value,))

    def fresh_table_statistics(self) -> Sql | None:
        """Session setting that makes information_schema.TABLES sizes current (8.0+ caches them for a
        day by default); None where they are always current (5.7).  Changes nothing on the server."""
        if self.identity.version >= (8, 0, 0):
            return Sql("SET SESSION information_schema_stats_expiry = 0")
        return None

    # --- Aurora procedures --------------------------------------------------

    def set_external_source(self, host: str, port: int, user: str, password: str) -> Sql:
        """Make this Aurora cluster a GTID auto-position replica of an external source.

        The procedure's fifth argument, ``ssl_encryption``, is always 0: for both Aurora generations
        AWS documents it as "This option isn't currently implemented" ("Configuring, starting, and
        stopping binary log (binlog) replication").  TLS is :meth:`set_binlog_source_ssl`.
        """
        proc = self._proc("rds_set_external_master_with_auto_position",
                          "rds_set_external_source_with_auto_position")
        _int_param("port", port, 1, 65535)
        return Sql(f"CALL {proc}(%s, %s, %s, %s, 0)", (host, port, user, password), secret_args=(3,))

    @property
    def sets_binlog_source_ssl(self) -> bool:
        """``mysql.rds_set_binlog_source_ssl`` exists: Aurora MySQL 3.06 and higher (and so 8.4)."""
        return self.identity.is_aurora and self.identity.aurora_release >= BINLOG_SOURCE_SSL_SINCE

    def set_binlog_source_ssl(self, on: bool) -> Sql:
        """TLS on this Aurora cluster's external replication channel (``SOURCE_SSL``), encrypted but
        without verifying the source's certificate (AWS: ``SOURCE_SSL_VERIFY_SERVER_CERT`` "isn't
        supported").  Aurora 3.06+ only; call it after :meth:`set_external_source`, replication stopped."""
        proc = self._proc("rds_set_binlog_source_ssl")
        if not self.sets_binlog_source_ssl:
            raise UnsupportedServer(self.role, f"{proc} needs Aurora MySQL 3.06 or higher; this is "
                                    f"{self.identity.describe()}",
                                    hint="upgrade Aurora, or replicate without TLS with an account whose plugin "
                                         "works without it (mysql_native_password) over a private network")
        return Sql(f"CALL {proc}({int(bool(on))})")

    def start_replication(self) -> Sql:
        return Sql(f"CALL {self._proc('rds_start_replication')}")

    def stop_replication(self) -> Sql:
        return Sql(f"CALL {self._proc('rds_stop_replication')}")

    def skip_repl_error(self) -> Sql:
        return Sql(f"CALL {self._proc('rds_skip_repl_error')}")

    def skip_transaction_with_gtid(self, gtid: str) -> Sql:
        return Sql(f"CALL {self._proc('rds_skip_transaction_with_gtid')}(%s)", (_single_gtid(gtid),))

    @property
    def has_rds_gtid_purged(self) -> bool:
        """``mysql.rds_gtid_purged`` exists here: Aurora MySQL 3.04 and later."""
        return (self.identity.aurora_generation == 3
                and _version_tuple(self.identity.aurora_version) >= RDS_GTID_PURGED_SINCE)

    def gtid_purged(self, gtids: str) -> Sql:
        """Declare GTIDs executed on Aurora 3.04+ in one call: ``mysql.rds_gtid_purged('+set')`` appends to
        ``gtid_purged`` ("Replicating transactions using GTIDs"); refused if it overlaps gtid_executed."""
        proc = self._proc("rds_gtid_purged")
        if not self.has_rds_gtid_purged:
            raise UnsupportedServer(self.role, f"mysql.rds_gtid_purged needs Aurora MySQL 3.04+, not "
                                    f"{self.identity.aurora_version}", hint="skip_transaction_with_gtid() per GTID")
        try:
            wanted = GtidSet.parse(gtids.lstrip("+"))
        except ValueError as e:
            raise ParameterError("gtids", str(e)) from e
        if not wanted:
            raise ParameterError("gtids", "is empty: nothing to declare")
        return Sql(f"CALL {proc}(%s)", ("+" + str(wanted),))

    def reset_external_source(self) -> Sql:
        return Sql(f"CALL {self._proc('rds_reset_external_master', 'rds_reset_external_source')}")

    def set_binlog_retention(self, hours: int) -> Sql:
        proc = self._proc("rds_set_configuration")
        limit = AURORA_MAX_BINLOG_RETENTION_HOURS
        if self.identity.aurora_generation == 2 and _version_tuple(self.identity.aurora_version) < (2, 11):
            limit = 168
        _int_param("binlog retention hours", hours, 1, limit)
        return Sql(f"CALL {proc}('binlog retention hours', %s)", (hours,))

    def show_configuration(self) -> Sql:
        return Sql(f"CALL {self._proc('rds_show_configuration')}")

    # --- replication accounts -----------------------------------------------

    def replication_auth_plugin(self, source: ServerIdentity | None = None) -> str:
        """Plugin for a replication account on *source* (default: this server)."""
        return replication_auth_plugin(source or self.identity)

    def create_replication_user(self, user: str, host: str, password: str, plugin: str | None = None) -> Sql:
        """``CREATE USER``; *plugin* default: :meth:`replication_auth_plugin` of this server."""
        plugin = plugin or self.replication_auth_plugin()
        if plugin not in AUTH_PLUGINS:
            raise ParameterError("plugin", f"{plugin!r} is not one of {', '.join(AUTH_PLUGINS)}")
        if plugin == "caching_sha2_password" and self.identity.version < (8, 0, 0):
            raise UnsupportedServer(self.role, "caching_sha2_password does not exist before MySQL 8.0")
        return Sql(f"CREATE USER IF NOT EXISTS %s@%s IDENTIFIED WITH {plugin} BY %s",
                   (user, host, password), secret_args=(2,))

    def alter_user_plugin(self, user: str, host: str, password: str, plugin: str) -> Sql:
        """Give an existing account another authentication plugin (and the password again)."""
        created = self.create_replication_user(user, host, password, plugin)
        return Sql(created.text.replace("CREATE USER IF NOT EXISTS", "ALTER USER", 1), created.args, (2,))

    def grant_replication(self, user: str, host: str) -> Sql:
        return Sql("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO %s@%s", (user, host))

    def drop_user(self, user: str, host: str) -> Sql:
        return Sql("DROP USER IF EXISTS %s@%s", (user, host))

    # --- stored routines ----------------------------------------------------

    @property
    def creates_routines_if_not_exists(self) -> bool:
        """``CREATE FUNCTION|PROCEDURE IF NOT EXISTS`` exists: MySQL 8.0.29+ (Aurora: its MySQL version)."""
        return self.identity.version >= ROUTINE_IF_NOT_EXISTS_SINCE

    def create_routine_if_not_exists(self, show_create: str, *, replica: Dialect | None = None) -> str:
        """The statement of ``SHOW CREATE FUNCTION|PROCEDURE`` with ``IF NOT EXISTS`` after the routine type.

        From 8.0.29 such a statement is binary-logged in full even when the routine exists (a note,
        1304): run on the source it changes nothing there and replicates.  The *replica* that applies
        it must know it too.  Before 8.0.29 on either: UnsupportedServer saying what to do by hand.
        Plain text, not :class:`Sql`: the body may hold ``%s`` and must reach the server unchanged
        (run it in the routine's schema: the name is not qualified).
        """
        for d in (self, replica):
            if d is not None and not d.creates_routines_if_not_exists:
                raise UnsupportedServer(d.role, "CREATE FUNCTION/PROCEDURE IF NOT EXISTS needs MySQL 8.0.29 or "
                                        f"later; this is {d.identity.describe()}", hint=ROUTINES_BY_HAND)
        m = _ROUTINE_HEAD.match(show_create)
        if not m:
            raise ParameterError("show_create", "is not the CREATE FUNCTION or CREATE PROCEDURE statement of "
                                 f"SHOW CREATE: {show_create[:80]!r}")
        if m["exists"]:
            return show_create
        return f"{m['head']}IF NOT EXISTS {show_create[m.end():]}"


def _for_channel(statement: str, channel: str | None) -> Sql:
    if channel is None:
        return Sql(statement)
    if not isinstance(channel, str) or len(channel) > 64:
        raise ParameterError("channel", f"{channel!r} is not a replication channel name")
    return Sql(f"{statement} FOR CHANNEL %s", (channel,))


def _single_gtid(gtid: str) -> str:
    """Canonical text of exactly one GTID ('uuid:N' or 'uuid:tag:N')."""
    try:
        one = GtidSet.parse(gtid)
    except ValueError as e:
        raise ParameterError("gtid", str(e)) from e
    if one.count() != 1:
        raise ParameterError("gtid", f"{gtid!r} is not exactly one GTID (uuid:N)")
    return str(one)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def dialect_for(identity: ServerIdentity, *, role: str = "server") -> Dialect:
    """The :class:`Dialect` for a detected server; *role* names it in errors."""
    return Dialect(identity, role)


def q(name: str) -> str:
    """``name`` as a quoted MySQL identifier."""
    return "`" + name.replace("`", "``") + "`"
