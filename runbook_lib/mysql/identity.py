"""Which server is this: MySQL 5.7, 8.0, 8.4 and later, Aurora MySQL 2, 3 or 8.4.

:func:`detect_identity` asks the server (``@@version``, ``@@aurora_version``) and returns a
:class:`ServerIdentity`, whose :class:`Flavor` :mod:`runbook_lib.mysql.dialect` turns into the
statements that server understands.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pymysql

from runbook_lib.core.errors import UnsupportedServer

__all__ = ["Flavor", "QueryFn", "ServerIdentity", "detect_identity", "flavor_of", "parse_version"]

QueryFn = Callable[[str], "list[dict[str, Any]]"]

ER_TABLEACCESS_DENIED = 1142
ER_NO_SUCH_TABLE = 1146
ER_UNKNOWN_SYSTEM_VARIABLE = 1193


class Flavor(Enum):
    MYSQL57 = "MySQL 5.7"
    MYSQL80 = "MySQL 8.0"            # 8.0 up to the 8.3 innovation releases
    MYSQL84_PLUS = "MySQL 8.4+"      # 8.4 LTS and 9.x: only the REPLICA/SOURCE forms
    AURORA2 = "Aurora MySQL 2"       # MySQL 5.7 compatible
    AURORA3 = "Aurora MySQL 3"       # MySQL 8.0 compatible
    AURORA84 = "Aurora MySQL 8.4"    # MySQL 8.4 compatible; versions 8.4.<minor> (8.4.7 the first)


@dataclass(frozen=True)
class ServerIdentity:
    """What a server says it is.  ``version`` is the MySQL version, also on Aurora."""

    version: tuple[int, int, int]
    version_text: str
    version_comment: str
    flavor: Flavor
    aurora_version: str = ""
    server_id: int = 0
    server_uuid: str = ""

    @property
    def major(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def is_aurora(self) -> bool:
        return self.flavor in (Flavor.AURORA2, Flavor.AURORA3, Flavor.AURORA84)

    @property
    def aurora_generation(self) -> int | None:
        """2, 3, or 8 for Aurora MySQL 8.4 (whose versions read 8.4.x); None when not Aurora."""
        return {Flavor.AURORA2: 2, Flavor.AURORA3: 3, Flavor.AURORA84: 8}.get(self.flavor)

    @property
    def aurora_release(self) -> tuple[int, int, int]:
        """``aurora_version`` as numbers (``'3.06.0'`` -> ``(3, 6, 0)``); ``(0, 0, 0)`` when not Aurora."""
        numbers = [int(n) for n in re.findall(r"\d+", self.aurora_version.rsplit("mysql_aurora.", 1)[-1])[:3]]
        return tuple((numbers + [0, 0, 0])[:3]) if numbers else (0, 0, 0)  # type: ignore[return-value]

    def describe(self) -> str:
        what = (f"Aurora MySQL {self.aurora_version} (MySQL {self.version_text})" if self.is_aurora
                else f"MySQL {self.version_text} {self.version_comment}".rstrip())
        return f"{what}, server_id {self.server_id}, server_uuid {self.server_uuid}"


def parse_version(text: str) -> tuple[int, int, int]:
    """``'9.7.4-2'`` -> ``(9, 7, 4)``; ``'5.7.12-log'`` -> ``(5, 7, 12)``."""
    m = re.match(r"\s*(\d+)\.(\d+)\.(\d+)", text)
    if not m:
        raise ValueError(f"cannot read a MySQL version from {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def flavor_of(version: tuple[int, int, int], aurora_version: str, *, role: str = "server") -> Flavor:
    """The flavour for a MySQL version and an Aurora version (``''`` when not Aurora)."""
    if aurora_version:
        parts = aurora_version.split(".")
        if parts[0] == "2":
            return Flavor.AURORA2
        if parts[0] == "3":
            return Flavor.AURORA3
        if parts[:2] == ["8", "4"]:      # AWS, "Aurora MySQL version 8.4 compatible with MySQL 8.4"
            return Flavor.AURORA84
        raise UnsupportedServer(role, f"Aurora MySQL {aurora_version} is not supported",
                                hint="this runbook supports Aurora MySQL 2 (5.7), 3 (8.0) and 8.4")
    if version[:2] == (5, 7):
        return Flavor.MYSQL57
    if version[0] == 8 and version[1] < 4:
        return Flavor.MYSQL80
    if version >= (8, 4, 0):
        return Flavor.MYSQL84_PLUS
    raise UnsupportedServer(role, f"MySQL {'.'.join(map(str, version))} is not supported",
                            hint="this runbook supports MySQL 5.7, 8.0, 8.4 and later")


def _as_query_fn(source: Any) -> QueryFn:
    if hasattr(source, "execute") and hasattr(source, "fetchall"):
        cursor = source

        def query(sql: str) -> list[dict[str, Any]]:
            cursor.execute(sql)
            rows = cursor.fetchall()
            names = [d[0] for d in cursor.description or ()]
            return [r if isinstance(r, dict) else dict(zip(names, r)) for r in rows]
        return query
    if callable(source):
        return source
    raise TypeError("detect_identity() needs a query(sql) -> list[dict] callable or a DB-API cursor")


def _errno(exc: pymysql.err.MySQLError) -> int:
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0


def _aurora_version(query: QueryFn) -> str:
    try:
        return str(query("SELECT @@aurora_version AS aurora_version")[0]["aurora_version"])
    except pymysql.err.MySQLError as e:
        if _errno(e) != ER_UNKNOWN_SYSTEM_VARIABLE:
            raise
    # Real Aurora answers @@aurora_version above.  ONLY the project's rehearsal lab answers here:
    # its Aurora stand-in is plain MySQL, which cannot add a system variable, so it records its
    # pretended Aurora version in a mysql.rds_sysinfo row.  On a self-managed MySQL the table is
    # missing (1146) or, for an account without rights on the mysql schema, not readable (1142).
    try:
        rows = query("SELECT value FROM mysql.rds_sysinfo WHERE name = 'aurora_version'")
    except pymysql.err.MySQLError as e:
        if _errno(e) not in (ER_NO_SUCH_TABLE, ER_TABLEACCESS_DENIED):
            raise
        return ""
    return str(rows[0]["value"]) if rows else ""


def detect_identity(source: QueryFn | Any, *, role: str = "server") -> ServerIdentity:
    """Ask a server what it is.

    *source* is a ``query(sql) -> list[dict]`` callable that raises PyMySQL errors (or a DB-API
    cursor).  Unexpected PyMySQL errors propagate; an unsupported version raises UnsupportedServer.
    """
    query = _as_query_fn(source)
    row = query("SELECT @@version AS version, @@version_comment AS version_comment, "
                "@@server_id AS server_id, @@server_uuid AS server_uuid")[0]
    version_text = str(row["version"])
    try:
        version = parse_version(version_text)
    except ValueError as e:
        raise UnsupportedServer(role, str(e), hint="is this a MySQL server?") from e
    aurora_version = _aurora_version(query)
    return ServerIdentity(version=version, version_text=version_text,
                          version_comment=str(row["version_comment"] or ""),
                          flavor=flavor_of(version, aurora_version, role=role),
                          aurora_version=aurora_version, server_id=int(row["server_id"]),
                          server_uuid=str(row["server_uuid"]))
