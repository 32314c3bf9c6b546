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

from runbook_lib.core.errors import ParameterError, UnsupportedServer
from runbook_lib.mysql.aurora_procedures import AuroraProcedures
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.identity import ServerIdentity
from runbook_lib.mysql.sql import Sql, int_param, single_gtid

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
#: First Aurora MySQL version with ``mysql.rds_disable_session_binlog`` / ``rds_enable_session_binlog``.
SESSION_BINLOG_PROCEDURES_SINCE = (2, 12, 0)


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


@dataclass(frozen=True)
class Dialect(AuroraProcedures):
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
        int_param("port", port, 1, 65535)
        int_param("connect_retry", connect_retry, 1, 31536000)
        int_param("retry_count", retry_count, 0, 31536000)
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
        one = single_gtid(gtid)
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

    @property
    def session_binlog_way(self) -> str:
        """How a session on this server keeps its own statements out of the binary log.

        * ``'sql_log_bin'``: ``SET SESSION sql_log_bin``, which needs SUPER, SYSTEM_VARIABLES_ADMIN or
          SESSION_VARIABLES_ADMIN.  Self-managed MySQL; Aurora 3 and later too, but only "if you have
          the SESSION_VARIABLES_ADMIN privilege" (AWS "Configuring, starting, and stopping binary log
          (binlog) replication", mysql.rds_disable_session_binlog), which Aurora's master user does not
          hold (AWS "Master user account privileges"): probe it (:func:`runbook_lib.mysql.connection.keeps_out_of_binlog`).
        * ``'procedure'``: ``CALL mysql.rds_disable_session_binlog`` / ``rds_enable_session_binlog``,
          Aurora MySQL 2.12 and higher (same page).
        * ``''``: none (Aurora 2 before 2.12: its master user has no SUPER and no procedure).
        """
        if self.identity.aurora_generation == 2:
            return "procedure" if self.identity.aurora_release >= SESSION_BINLOG_PROCEDURES_SINCE else ""
        return "sql_log_bin"

    def session_binlog(self, on: bool) -> Sql:
        """Turn binary logging on/off for this session only, e.g. so that a change stays on this server
        and does not replicate (see :attr:`session_binlog_way`).  On Aurora 2.12+ the procedure; on
        Aurora 3 ``SET SESSION sql_log_bin``, which the server refuses (PrivilegeMissing) unless the
        account holds SESSION_VARIABLES_ADMIN; on older Aurora 2 UnsupportedServer."""
        way = self.session_binlog_way
        if way == "procedure":
            return Sql(f"CALL mysql.rds_{'enable' if on else 'disable'}_session_binlog")
        if not way:
            raise UnsupportedServer(self.role, f"Aurora MySQL {self.identity.aurora_version} cannot keep a "
                                    "session's statements out of the binary log (mysql.rds_disable_session_binlog "
                                    "needs Aurora MySQL 2.12 or later)",
                                    hint="every statement on this Aurora is binary-logged: plan for it to replicate")
        return Sql(f"SET SESSION sql_log_bin = {int(bool(on))}")

    def kill_connection(self, thread_id: int) -> Sql:
        """End another session: ``KILL CONNECTION`` (Aurora 3's master user may, with CONNECTION_ADMIN);
        Aurora 2's master user has no such privilege and calls ``mysql.rds_kill``."""
        int_param("thread_id", thread_id, 1, 2**64 - 1)
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


def dialect_for(identity: ServerIdentity, *, role: str = "server") -> Dialect:
    """The :class:`Dialect` for a detected server; *role* names it in errors."""
    return Dialect(identity, role)


