"""Make a lab MySQL server behave like Aurora MySQL for external replication.

:func:`install_aurora_standin` gives the lab's ``aurora`` server what a real Aurora
cluster offers a DBA and nothing more:

* ``rdsadmin``@``localhost``: all privileges, ``ACCOUNT LOCK`` (nobody logs in as
  it; it is only the definer of the procedures, as on Aurora);
* Aurora's replication procedures in the ``mysql`` schema, with their real names and
  argument lists in both generations, and the tables they keep
  (``sql/aurora_procs.sql``, which documents each one);
* the runbook's admin account with exactly the privileges of Aurora's master user
  (:func:`master_user_grants`): no SUPER, REPLICATION_SLAVE_ADMIN or
  SYSTEM_VARIABLES_ADMIN, so ``CHANGE REPLICATION SOURCE``, ``START REPLICA`` and
  ``SET GLOBAL`` fail for it and it must use the procedures;
* ``mysql.rds_sysinfo`` with ``('aurora_version', <version>)``, where the library
  reads the emulated Aurora version (real Aurora answers ``@@aurora_version``).

Everything runs with ``sql_log_bin=0``: a server restored from the source keeps
exactly the source's GTID history.  Running it again is safe; it sets the admin
password again and re-applies grants and procedures.

The .sql file uses the mysql client's ``DELIMITER`` convention
(:func:`split_sql_script`), so it can also be loaded with ``mysql`` by hand.
"""
from __future__ import annotations

import re
import secrets
from importlib import resources

import pymysql

from runbook_lib.core.errors import LabError

SQL_RESOURCE = "aurora_procs.sql"

#: Procedures that exist only from Aurora MySQL 3 on (the installer drops them for Aurora 2).
AURORA3_ONLY_PROCEDURES = (
    "rds_set_external_source_with_auto_position",
    "rds_reset_external_source",
    "rds_set_source_auto_position",
)

#: Procedures that exist only from Aurora MySQL 3.04 on (dropped for Aurora 2 and 3.01-3.03).
SINCE_3_04_PROCEDURES = ("rds_gtid_purged",)

#: Aurora 2's names that the stand-in does not offer as Aurora 8.4: AWS documents them as
#: "Aurora MySQL version 2" procedures and MySQL 8.4 removed the MASTER words; the runbook never
#: needs them there, so the lab does not pretend they exist.
AURORA2_NAMES = (
    "rds_set_external_master_with_auto_position",
    "rds_reset_external_master",
    "rds_set_master_auto_position",
)

#: TLS on the external channel: "supported for Aurora MySQL version 3.06 and higher" (AWS,
#: "Configuring, starting, and stopping binary log (binlog) replication").
BINLOG_SOURCE_SSL_PROCEDURE = "rds_set_binlog_source_ssl"
BINLOG_SOURCE_SSL_SINCE = (3, 6, 0)

#: Client certificates for the channel: "supported for Aurora MySQL version 2: 2.09.2, 2.10.0, 2.10.1,
#: and 2.11.0; and version 3: 3.01.1 and higher" (same page); the remove procedure goes with it.
SSL_MATERIAL_PROCEDURES = ("rds_import_binlog_ssl_material", "rds_remove_binlog_ssl_material")
SSL_MATERIAL_AURORA2 = ((2, 9, 2), (2, 10, 0), (2, 10, 1), (2, 11, 0))
SSL_MATERIAL_SINCE = (3, 1, 1)

#: Aurora's public procedures this stand-in offers (Aurora 3.06+ has all of them).
AURORA_PROCEDURES = (
    *AURORA2_NAMES,
    *AURORA3_ONLY_PROCEDURES,
    "rds_start_replication",
    "rds_stop_replication",
    "rds_skip_repl_error",
    "rds_skip_transaction_with_gtid",
    "rds_set_configuration",
    "rds_show_configuration",
    BINLOG_SOURCE_SSL_PROCEDURE,
    *SSL_MATERIAL_PROCEDURES,
    *SINCE_3_04_PROCEDURES,
)

SUPERUSER_ROLE = "rds_superuser_role"

# Aurora MySQL master user, from AWS "Master user account privileges" (UsingWithRDS.MasterAccounts)
# and, for the role, "Role-based privilege model" (AuroraMySQL.Compare-80-v3).  Aurora-only privileges
# (LOAD FROM S3, SELECT INTO S3) do not exist in Oracle MySQL and are left out.  SET_USER_ID was
# removed in MySQL 8.4; its replacements SET_ANY_DEFINER and ALLOW_NONEXISTENT_DEFINER stand for it.
_AURORA2_MASTER = (
    "ALTER", "ALTER ROUTINE", "CREATE", "CREATE ROUTINE", "CREATE TEMPORARY TABLES", "CREATE USER",
    "CREATE VIEW", "DELETE", "DROP", "EVENT", "EXECUTE", "INDEX", "INSERT", "LOCK TABLES", "PROCESS",
    "REFERENCES", "RELOAD", "REPLICATION CLIENT", "REPLICATION SLAVE", "SELECT", "SHOW DATABASES",
    "SHOW VIEW", "TRIGGER", "UPDATE",
)  # ... WITH GRANT OPTION
_SET_USER_ID = ("SET_ANY_DEFINER", "ALLOW_NONEXISTENT_DEFINER")
_AURORA3_MASTER = (
    "ALTER", "APPLICATION_PASSWORD_ADMIN", "ALTER ROUTINE", "CONNECTION_ADMIN", "CREATE", "CREATE ROLE",
    "CREATE ROUTINE", "CREATE TEMPORARY TABLES", "CREATE USER", "CREATE VIEW", "DELETE", "DROP",
    "DROP ROLE", "EVENT", "EXECUTE", "INDEX", "INSERT", "LOCK TABLES", "PROCESS", "REFERENCES", "RELOAD",
    "REPLICATION CLIENT", "REPLICATION SLAVE", "ROLE_ADMIN", *_SET_USER_ID, "SELECT", "SHOW DATABASES",
    "SHOW VIEW", "TRIGGER", "UPDATE", "XA_RECOVER_ADMIN",
)
_AURORA3_ROLE = (*_AURORA3_MASTER, "CREATE TABLESPACE")  # ... WITH GRANT OPTION
_SINCE_3_04 = ("SHOW_ROUTINE",)
_SINCE_3_09 = ("FLUSH_OPTIMIZER_COSTS", "FLUSH_STATUS", "FLUSH_TABLES", "FLUSH_USER_RESOURCES")

#: What the admin account must never hold (the reason the procedures exist).
FORBIDDEN_PRIVILEGES = ("SUPER", "REPLICATION_SLAVE_ADMIN", "SYSTEM_VARIABLES_ADMIN",
                        "SESSION_VARIABLES_ADMIN", "BINLOG_ADMIN", "SYSTEM_USER", "FILE", "SHUTDOWN")


def parse_aurora_version(version: str) -> tuple[int, int, int]:
    """``'3.08.0'`` or ``'8.0.mysql_aurora.3.08.0'`` -> ``(3, 8, 0)``; ``'8.4.7'`` -> ``(8, 4, 7)``.

    Aurora MySQL 8.4 numbers its versions ``8.4.<minor>`` (engine version ``8.4.mysql_aurora.8.4.7``;
    AWS, "Aurora MySQL version 8.4 compatible with MySQL 8.4").
    """
    text = version.strip().rsplit("mysql_aurora.", 1)[-1]
    match = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match or not (int(match.group(1)) in (2, 3) or match.group(1, 2) == ("8", "4")):
        raise LabError(f"aurora_version {version!r} is not an Aurora MySQL 2.x, 3.x or 8.4.x version",
                       hint="give it like '3.08.0', '2.12.1' or '8.4.7'")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def procedures_for(aurora_version: str) -> tuple[str, ...]:
    """The public ``mysql.rds_*`` procedures the stand-in offers as this Aurora version."""
    v = parse_aurora_version(aurora_version)
    drop = set()
    if v[0] == 2:
        drop |= set(AURORA3_ONLY_PROCEDURES)
    if v[0] == 8:
        drop |= set(AURORA2_NAMES)
    if v < BINLOG_SOURCE_SSL_SINCE:
        drop.add(BINLOG_SOURCE_SSL_PROCEDURE)
    if v not in SSL_MATERIAL_AURORA2 and v < SSL_MATERIAL_SINCE:
        drop |= set(SSL_MATERIAL_PROCEDURES)
    if v < (3, 4, 0):
        drop |= set(SINCE_3_04_PROCEDURES)
    return tuple(p for p in AURORA_PROCEDURES if p not in drop)


def master_user_grants(aurora_version: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(privileges granted directly to the master user, privileges of ``rds_superuser_role``).

    Aurora 2 has no role: its master user holds its privileges WITH GRANT OPTION.
    Aurora 3 grants the master user its list and the role (the role carries GRANT OPTION).
    """
    v = parse_aurora_version(aurora_version)
    if v[0] == 2:
        return _AURORA2_MASTER, ()
    direct = _AURORA3_MASTER
    if v >= (3, 4, 0):
        direct += _SINCE_3_04
    if v >= (3, 9, 0):
        direct += _SINCE_3_09
    return direct, _AURORA3_ROLE


def split_sql_script(text: str) -> list[str]:
    """Statements of a script in the mysql client's ``DELIMITER`` convention.

    A line ``DELIMITER x`` makes ``x`` the terminator; a statement ends on a line that
    ends with the terminator.  Comment lines (``--``) between statements are dropped.
    """
    delimiter, statements, buffer = ";", [], []
    for line in text.splitlines():
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("--")):
            continue
        if not buffer and stripped.upper().startswith("DELIMITER "):
            delimiter = stripped.split(None, 1)[1].strip()
            continue
        buffer.append(line)
        if stripped.endswith(delimiter):
            statement = "\n".join(buffer).rstrip()[: -len(delimiter)].strip()
            if statement:
                statements.append(statement)
            buffer = []
    if "\n".join(buffer).strip():
        raise LabError(f"{SQL_RESOURCE}: the last statement has no terminator {delimiter!r}")
    return statements


def _sql_script() -> str:
    return resources.files("runbook_lib.lab").joinpath("sql", SQL_RESOURCE).read_text(encoding="utf-8")


def _account(cur, user: str, host: str) -> str:
    return f"{_quote(cur, user)}@{_quote(cur, host)}"


def _quote(cur, value: str) -> str:
    return cur.connection.escape(value)


def install_aurora_standin(conn: pymysql.connections.Connection, *, aurora_version: str = "3.08.0",
                           admin_user: str = "admin", admin_host: str = "%",
                           admin_password: str) -> None:
    """Install the Aurora stand-in on the server behind ``conn`` (a lab superuser).

    Commits any transaction open on ``conn`` first.  Raises :class:`LabError`.
    """
    direct, role = master_user_grants(aurora_version)
    if not admin_password:
        raise LabError("the Aurora stand-in's admin account needs a password")
    conn.commit()          # sql_log_bin cannot change inside a transaction: end any open one first
    cur = conn.cursor()
    cur.execute("SELECT @@session.sql_log_bin")
    (log_bin,) = cur.fetchone()
    statement = "SET SESSION sql_log_bin = 0"
    try:
        cur.execute(statement)
        # rdsadmin: definer of the procedures, never a login (a locked account can be a definer).
        rdsadmin = "'rdsadmin'@'localhost'"
        for statement in (
            f"CREATE USER IF NOT EXISTS {rdsadmin} IDENTIFIED BY {_quote(cur, secrets.token_urlsafe(24))}"
            " ACCOUNT LOCK",
            f"ALTER USER {rdsadmin} ACCOUNT LOCK",
            f"GRANT ALL PRIVILEGES ON *.* TO {rdsadmin} WITH GRANT OPTION",
        ):
            cur.execute(statement)
        for statement in split_sql_script(_sql_script()):
            cur.execute(statement)
        offered = procedures_for(aurora_version)
        for name in AURORA_PROCEDURES:
            if name not in offered:
                statement = f"DROP PROCEDURE IF EXISTS mysql.{name}"
                cur.execute(statement)
        statement = "REPLACE INTO mysql.rds_sysinfo (name, value) VALUES ('aurora_version', %s)"
        cur.execute(statement, (aurora_version,))
        conn.commit()
        statement = "CALL mysql.rds_standin_apply_retention()"
        cur.execute(statement)
        for statement in _admin_statements(cur, admin_user, admin_host, admin_password, direct, role):
            cur.execute(statement)
        conn.commit()
    except pymysql.MySQLError as e:
        conn.rollback()
        shown = statement.split("IDENTIFIED BY")[0].splitlines()[0][:120]   # never a password
        raise LabError(f"installing the Aurora stand-in failed at {shown!r}: {e}",
                       hint="the connection must be a lab superuser (all privileges, SYSTEM_USER)") from e
    finally:
        if conn.open:
            cur.execute(f"SET SESSION sql_log_bin = {int(log_bin)}")
        cur.close()


def _admin_statements(cur, user: str, host: str, password: str,
                      direct: tuple[str, ...], role: tuple[str, ...]) -> list[str]:
    admin = _account(cur, user, host)
    role_account = f"'{SUPERUSER_ROLE}'@'%'"
    out = [
        f"CREATE USER IF NOT EXISTS {admin} IDENTIFIED BY {_quote(cur, password)}",
        f"ALTER USER {admin} IDENTIFIED BY {_quote(cur, password)} ACCOUNT UNLOCK",
        # Start from nothing, so a second run (or another Aurora version) leaves exactly the list.
        f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {admin}",
        f"REVOKE IF EXISTS {role_account} FROM {admin} IGNORE UNKNOWN USER",
    ]
    if not role:                                               # Aurora 2
        out.append(f"GRANT {', '.join(direct)} ON *.* TO {admin} WITH GRANT OPTION")
        return out
    out += [
        f"CREATE ROLE IF NOT EXISTS {role_account}",
        f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {role_account}",
        f"GRANT {', '.join(role)} ON *.* TO {role_account} WITH GRANT OPTION",
        f"GRANT {', '.join(direct)} ON *.* TO {admin}",
        f"GRANT {role_account} TO {admin}",
        f"SET DEFAULT ROLE {role_account} TO {admin}",
    ]
    return out


def standin_installed(conn: pymysql.connections.Connection) -> bool:
    """True when the server behind ``conn`` carries the stand-in (procedures and version row)."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.ROUTINES "
                    "WHERE ROUTINE_SCHEMA = 'mysql' AND ROUTINE_TYPE = 'PROCEDURE' AND ROUTINE_NAME IN %s",
                    (AURORA_PROCEDURES,))
        (found,) = cur.fetchone()
        cur.execute("SELECT COUNT(*) FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = 'mysql' AND TABLE_NAME = 'rds_sysinfo'")
        (has_sysinfo,) = cur.fetchone()
        if not has_sysinfo:
            return False
        cur.execute("SELECT value FROM mysql.rds_sysinfo WHERE name = 'aurora_version'")
        row = cur.fetchone()
    if not row:
        return False
    return found >= len(procedures_for(row[0]))
