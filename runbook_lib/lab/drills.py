"""`runbook lab break <drill>`: make the lab's source show what a restore from S3 refuses, so that a
trainee (and the tests) see notebook 01_preflight find it; `runbook lab mend` takes the drills away.

Unlike the faults of :mod:`runbook_lib.lab.faults`, a drill needs no replication: it is for the
source before the migration.  Everything is written as ``labroot`` with ``sql_log_bin=0`` in the
schema ``drill_restore`` (or, for ``percona-tables``, as two tables in the ``mysql`` schema), so the
source's GTID history stays as it was.  What a MySQL 9.7 server can show (Aurora User Guide,
"Reducing the time for physical migration to Amazon Aurora MySQL" and "Physical migration from MySQL
by using Percona XtraBackup and Amazon S3"):

* ``compressed-table``: a table with ``ROW_FORMAT=COMPRESSED``;
* ``page-compressed``: a table with ``COMPRESSION='zlib'`` (InnoDB page compression);
* ``outside-datadir``: a table with ``DATA DIRECTORY`` in the lab's ``elsewhere`` folder (a known
  directory through ``innodb_directories``, as a DBA's second disk would be);
* ``table-encryption``: ``default_table_encryption=ON`` (not persisted): an encrypted-by-default
  source.  Encrypted tablespaces need a keyring component, which the shared root filesystem has not;
  the rows for them are unit-tested on information_schema's outputs;
* ``percona-tables``: ``mysql.compression_dictionary`` and ``mysql.compression_dictionary_cols``, the
  tables of Percona Server's ``mysql`` schema that make AWS refuse it as a source.

A page size other than 16 KB, several ibdata files and ``innodb_log_files_in_group`` are fixed when a
server is initialized (the last one is gone from MySQL 8.0.30): unit tests cover them.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pymysql

from runbook_lib.core.errors import LabError
from runbook_lib.lab import control
from runbook_lib.lab.faults import FaultReport

SCHEMA = "drill_restore"
DRILLS = ("compressed-table", "page-compressed", "outside-datadir", "table-encryption", "percona-tables")
_PERCONA = ("compression_dictionary", "compression_dictionary_cols")


def elsewhere(state: control.LabState) -> Path:
    """The host folder outside every data directory that the lab's servers know (innodb_directories)."""
    return Path(state.runtime_dir) / "elsewhere"


def _sql(state: control.LabState, *statements: str) -> None:
    server, statement = control.instances(state)["onprem"], "connect"
    try:
        with server.connect() as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            for statement in statements:
                cur.execute(statement)
    except pymysql.MySQLError as e:
        raise LabError(f"onprem: {statement.split('(')[0][:80]} failed: {e}") from e


def _table(name: str, options: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{name} (id INT PRIMARY KEY, note VARCHAR(64)) {options}")


def _compressed(state) -> tuple[tuple[str, ...], tuple[str, ...]]:
    _sql(state, f"CREATE DATABASE IF NOT EXISTS {SCHEMA}", _table("compressed", "ROW_FORMAT=COMPRESSED"),
         f"INSERT IGNORE INTO {SCHEMA}.compressed VALUES (1, 'drill')")
    return ((f"source: CREATE TABLE {SCHEMA}.compressed ... ROW_FORMAT=COMPRESSED (not binary-logged)",),
            ("01_preflight, 'what a restore from S3 refuses': 'compressed tables or pages' fails and lists "
             f"{SCHEMA}.compressed (ROW_FORMAT=COMPRESSED)",))


def _page_compressed(state) -> tuple[tuple[str, ...], tuple[str, ...]]:
    _sql(state, f"CREATE DATABASE IF NOT EXISTS {SCHEMA}", _table("paged", "COMPRESSION='zlib'"),
         f"INSERT IGNORE INTO {SCHEMA}.paged VALUES (1, 'drill')")
    return ((f"source: CREATE TABLE {SCHEMA}.paged ... COMPRESSION='zlib' (not binary-logged)",),
            (f"'compressed tables or pages' fails and lists {SCHEMA}.paged (COMPRESSION='zlib')",))


def _outside(state) -> tuple[tuple[str, ...], tuple[str, ...]]:
    server = control.instances(state)["onprem"]
    where = server.runner.inside(elsewhere(state))
    _sql(state, f"CREATE DATABASE IF NOT EXISTS {SCHEMA}", _table("far", f"DATA DIRECTORY = '{where}'"),
         f"INSERT IGNORE INTO {SCHEMA}.far VALUES (1, 'drill')")
    return ((f"source: CREATE TABLE {SCHEMA}.far ... DATA DIRECTORY = '{where}' (not binary-logged)",),
            (f"'tablespaces outside the data directory' fails and lists {SCHEMA}/far: {where}/...",))


def _encryption(state) -> tuple[tuple[str, ...], tuple[str, ...]]:
    _sql(state, "SET GLOBAL default_table_encryption = ON")
    return (("source: SET GLOBAL default_table_encryption = ON (not persisted: a restart ends it)",),
            ("'encryption at rest (InnoDB)' fails and lists default_table_encryption=ON",))


def _percona(state) -> tuple[tuple[str, ...], tuple[str, ...]]:
    _sql(state, *(f"CREATE TABLE IF NOT EXISTS mysql.{t} (id INT PRIMARY KEY) ENGINE=InnoDB" for t in _PERCONA))
    return ((f"source: CREATE TABLE mysql.{_PERCONA[0]}, mysql.{_PERCONA[1]} (Percona Server's extra "
             "system tables; not binary-logged)",),
            ("'Oracle MySQL source (not Percona Server)' fails and names them",))


_DRILLS: dict[str, Callable] = {"compressed-table": _compressed, "page-compressed": _page_compressed,
                                "outside-datadir": _outside, "table-encryption": _encryption,
                                "percona-tables": _percona}


def drill(name: str, lab: str | None = None, *, say: Callable[[str], None] = print) -> FaultReport:
    """Give lab ``lab``'s source the drill ``name`` (one of :data:`DRILLS`)."""
    if name not in _DRILLS:
        raise LabError(f"{name!r} is not a drill", hint=f"drills: {', '.join(DRILLS)}")
    did, expect = _DRILLS[name](control.load_state(lab))
    report = FaultReport(name, did, (*expect, "then `runbook lab mend` takes every drill away"))
    say(report.text())
    return report


def mend(lab: str | None = None, *, say: Callable[[str], None] = print) -> None:
    """Take every drill away from lab ``lab``'s source (unlogged, like the drills)."""
    _sql(control.load_state(lab), f"DROP DATABASE IF EXISTS {SCHEMA}", "SET GLOBAL default_table_encryption = OFF",
         *(f"DROP TABLE IF EXISTS mysql.{t}" for t in _PERCONA))
    say(f"source: dropped {SCHEMA} and mysql.{', mysql.'.join(_PERCONA)}; default_table_encryption OFF")
