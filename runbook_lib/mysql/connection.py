"""Connections to the two servers, with role names and errors an operator can act on.

``connect(endpoint, password)`` returns a :class:`Server`: a PyMySQL connection (autocommit,
dict rows) that knows its role ('source' / 'aurora'), what the server is (:attr:`Server.identity`)
and how to speak to it (:attr:`Server.dialect`).  Every PyMySQL error is raised again as a
:mod:`runbook_lib.core.errors` class naming the role and ``host:port``.  The password is kept only to
reconnect; it never appears in a message, a repr or the log.
"""
from __future__ import annotations

import logging
import re
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.cursors

from runbook_lib.core.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ParameterError,
    PrivilegeMissing,
    QueryFailed,
    RunbookError,
    UnknownHost,
    UnsupportedServer,
)
from runbook_lib.mysql.dialect import Dialect, dialect_for
from runbook_lib.mysql.identity import ServerIdentity, detect_identity
from runbook_lib.mysql.sql import Sql

log = logging.getLogger(__name__)

TLS_MODES = ("disabled", "preferred", "required", "verify_ca")

_CONNECTION_ERRNOS = {2002, 2003, 2005, 2006, 2013, 2026, 2055}   # client-side: server not reachable
_PRIVILEGE_ERRNOS = {1044, 1142, 1143, 1227, 1370}
_DNS_FAILURE = re.compile(r"Name or service not known|nodename nor servname|Temporary failure in name "
                          r"resolution|getaddrinfo failed|No address associated with hostname", re.I)


@dataclass(frozen=True)
class Endpoint:
    """Where and how to connect.  ``tls``: disabled | preferred | required | verify_ca (needs tls_ca).

    'preferred' uses TLS without verifying the certificate if the server offers it; 'required'
    insists on TLS without verification; 'verify_ca' checks the server's certificate against
    ``tls_ca`` (not the host name).
    """

    role: str
    host: str
    port: int
    user: str
    tls: str = "preferred"
    tls_ca: str = ""
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.tls not in TLS_MODES:
            raise ParameterError(f"{self.role}_tls", f"{self.tls!r} is not one of {', '.join(TLS_MODES)}")
        if self.tls == "verify_ca" and not self.tls_ca:
            raise ParameterError(f"{self.role}_tls_ca", "is required when tls is 'verify_ca'",
                                 hint="give the path of the CA certificate (PEM) that signed the server's")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ParameterError(f"{self.role}_port", f"{self.port!r} is not a TCP port")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def tls_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`pymysql.connect` that give this TLS mode."""
        if self.tls == "disabled":
            return {"ssl_disabled": True}
        if self.tls == "preferred":
            return {}   # PyMySQL 2's default: TLS without verification when the server offers it
        if self.tls == "required":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return {"ssl": ctx}
        return {"ssl_ca": self.tls_ca, "ssl_verify_cert": True, "ssl_verify_identity": False}


def _errno(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


def _detail(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    return str(args[1]) if len(args) > 1 else str(exc)


_PRIVILEGE_PATTERNS = (
    (re.compile(r"you need \(at least one of\) the (?P<p>.+?) privilege"), "{p}"),
    (re.compile(r"^(?P<c>[\w ]+?) command denied to user .* for column '(?P<col>[^']*)' in table '(?P<t>[^']*)'"),
     "{c} on column {col} of table {t}"),
    (re.compile(r"^(?P<c>[\w ]+?) command denied to user .* for table '(?P<t>[^']*)'"), "{c} on table {t}"),
    (re.compile(r"^(?P<c>[\w ]+?) command denied to user .* for routine '(?P<r>[^']*)'"), "{c} on routine {r}"),
    (re.compile(r"^Access denied for user .* to database '(?P<d>[^']*)'"), "access to database {d}"),
)


def privilege_from_message(message: str) -> str:
    """The privilege a MySQL 'denied' message names, e.g. 'EXECUTE on routine mysql.rds_x'."""
    for pattern, template in _PRIVILEGE_PATTERNS:
        m = pattern.search(message)
        if m:
            groups = m.groupdict()
            if "c" in groups:
                groups["c"] = groups["c"].upper()
            if "p" in groups:   # "(at least one of) the SUPER, REPLICATION CLIENT privilege(s)"
                groups["p"] = re.sub(r",\s*", " or ", groups["p"])
            return template.format(**groups)
    return "a privilege (see the server's message)"


def map_error(exc: pymysql.err.MySQLError, endpoint: Endpoint, statement: str = "") -> RunbookError:
    """The :mod:`runbook_lib.core.errors` exception for a PyMySQL error on *endpoint*.

    *statement* is what was being run, as it may be shown (no secret values); '' while connecting.
    The caller raises the result ``from exc``.
    """
    role, host, port = endpoint.role, endpoint.host, endpoint.port
    errno, detail = _errno(exc), _detail(exc)
    cause = getattr(exc, "original_exception", None) or exc.__context__
    connecting = not statement
    if errno == 2005 or (connecting and errno in _CONNECTION_ERRNOS
                         and (isinstance(cause, socket.gaierror) or _DNS_FAILURE.search(detail))):
        return UnknownHost(role, host, port)
    if errno in _CONNECTION_ERRNOS:
        low = detail.lower()
        if not connecting:
            lost = (f"no answer within read_timeout={endpoint.read_timeout:g}s" if "timed out" in low
                    else f"connection lost ({detail})")
            return ConnectionFailed(role, host, port, f"{lost} while running {statement!r}",
                                    hint="the server may have restarted or failed over, or the statement "
                                         "is slow; check the server, then reconnect() and run it again")
        if "refused" in low:
            reason = "connection refused (nothing listens on that port, or a firewall rejects it)"
        elif "timed out" in low:
            reason = "timed out (no answer: firewall, security group, routing, or an overloaded server)"
        elif "ssl" in low or isinstance(cause, ssl.SSLError):
            return ConnectionFailed(role, host, port, f"TLS failed with tls={endpoint.tls!r}: {detail}",
                                    hint="with verify_ca, tls_ca must be the CA that signed the server's "
                                         "certificate; with required, the server must have TLS enabled")
        else:
            reason = detail
        return ConnectionFailed(role, host, port, reason)
    if isinstance(exc, pymysql.err.InterfaceError) and not errno:
        return ConnectionFailed(role, host, port, "the connection is closed",
                                hint="call reconnect() on this server, or re-run the session cell")
    if errno == 1045:
        return AuthenticationFailed(role, endpoint.user, host, port, detail)
    if errno in _PRIVILEGE_ERRNOS:
        return PrivilegeMissing(role, endpoint.user, privilege_from_message(detail),
                                statement or f"connecting to {host}:{port}")
    return QueryFailed(role, statement or f"connecting to {host}:{port}", errno, detail,
                       hint=f"MySQL error {errno} from {host}:{port}; its message says what it refused")


class _Password:
    """Holds a password so that neither repr() nor vars() of a Server shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "'********'"

    def reveal(self) -> str:
        return self._value


class Server:
    """One connected server.  Use :func:`connect`; close it (or use ``with``) when done."""

    def __init__(self, endpoint: Endpoint, password: str) -> None:
        self.endpoint = endpoint
        self.role = endpoint.role
        self._password = _Password(password)
        self._identity: ServerIdentity | None = None
        self._dialect: Dialect | None = None
        self._conn: pymysql.connections.Connection = self._open()

    def __repr__(self) -> str:
        return f"<Server {self.role} {self.endpoint.user}@{self.endpoint.address}>"

    def _open(self) -> pymysql.connections.Connection:
        ep = self.endpoint
        try:
            conn = pymysql.connect(host=ep.host, port=ep.port, user=ep.user, password=self._password.reveal(),
                                   connect_timeout=ep.connect_timeout, read_timeout=ep.read_timeout,
                                   write_timeout=ep.read_timeout, autocommit=True, charset="utf8mb4",
                                   cursorclass=pymysql.cursors.DictCursor, program_name="runbook_lib",
                                   **ep.tls_options())
        except pymysql.err.MySQLError as e:
            raise map_error(e, ep) from e
        if ep.tls in ("required", "verify_ca"):
            self._check_tls(conn)
        log.debug("connected to %s %s@%s", self.role, ep.user, ep.address)
        return conn

    def _check_tls(self, conn: pymysql.connections.Connection) -> None:
        """Belt and braces for tls=required/verify_ca: the session really is encrypted."""
        ep = self.endpoint
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                row = cur.fetchone()
        except pymysql.err.MySQLError as e:
            conn.close()
            raise map_error(e, ep, "SHOW SESSION STATUS LIKE 'Ssl_cipher'") from e
        if not (row and row["Value"]):
            conn.close()
            raise ConnectionFailed(self.role, ep.host, ep.port, f"tls={ep.tls!r} but the session is not encrypted",
                                   hint="enable TLS on the server, or set tls to 'preferred'")

    # --- identity -----------------------------------------------------------

    def _raw_query(self, sql: str) -> list[dict[str, Any]]:
        with self._conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())

    @property
    def identity(self) -> ServerIdentity:
        """What the server is (detected on first use, again after :meth:`reconnect`)."""
        if self._identity is None:
            try:
                self._identity = detect_identity(self._raw_query, role=self.role)
            except pymysql.err.MySQLError as e:
                raise map_error(e, self.endpoint, "detect server version and flavour") from e
        return self._identity

    @property
    def dialect(self) -> Dialect:
        if self._dialect is None:
            self._dialect = dialect_for(self.identity, role=self.role)
        return self._dialect

    # --- statements ---------------------------------------------------------

    def _run(self, sql: str | bytes | Sql, args: Any, fetch: bool) -> tuple[int, list[dict[str, Any]]]:
        if isinstance(sql, Sql):
            if args is not None:
                raise TypeError("an Sql statement carries its own args")
            text, args, shown = sql.text, (sql.args or None), sql.shown()
        elif isinstance(sql, bytes):   # already encoded for the session's character_set_client
            text, shown = sql, sql.decode("utf-8", "replace")
        else:
            text, shown = sql, sql
        log.debug("%s: %s", self.role, shown)
        try:
            with self._conn.cursor() as cur:
                affected = cur.execute(text, args)
                rows = list(cur.fetchall()) if fetch and cur.description else []
        except pymysql.err.MySQLError as e:
            raise map_error(e, self.endpoint, shown) from e
        return affected, rows

    def query(self, sql: str | Sql, args: Any = None) -> list[dict[str, Any]]:
        """Rows of the first result set as dicts.  With a str, *args* fill its ``%s`` placeholders."""
        return self._run(sql, args, fetch=True)[1]

    def query_one(self, sql: str | Sql, args: Any = None) -> dict[str, Any] | None:
        """The first row, or None."""
        rows = self.query(sql, args)
        return rows[0] if rows else None

    def scalar(self, sql: str | Sql, args: Any = None) -> Any:
        """The first column of the first row, or None."""
        row = self.query_one(sql, args)
        return next(iter(row.values())) if row else None

    def execute(self, sql: str | bytes | Sql, args: Any = None) -> int:
        """Run a statement; return the affected row count.  ``bytes`` are sent as they are: a statement
        encoded for a session whose character_set_client is not utf8mb4."""
        return self._run(sql, args, fetch=False)[0]

    def variables(self, *names: str) -> dict[str, str | None]:
        """Global system variables as text (``SHOW GLOBAL VARIABLES``); None for a name the server lacks."""
        return self._show("VARIABLES", names)

    def status_vars(self, *names: str) -> dict[str, str | None]:
        """Global status variables as text (``SHOW GLOBAL STATUS``); None for a name the server lacks."""
        return self._show("STATUS", names)

    def _show(self, what: str, names: tuple[str, ...]) -> dict[str, str | None]:
        if not names:
            rows = self.query(f"SHOW GLOBAL {what}")
            return {r["Variable_name"]: r["Value"] for r in rows}
        rows = self.query(f"SHOW GLOBAL {what} WHERE Variable_name IN ({', '.join(['%s'] * len(names))})",
                          tuple(names))
        found = {r["Variable_name"].lower(): r["Value"] for r in rows}
        return {name: found.get(name.lower()) for name in names}

    # --- lifetime -----------------------------------------------------------

    def another(self) -> Server:
        """A new connection to the same endpoint with the same credentials (for another thread)."""
        return Server(self.endpoint, self._password.reveal())

    def stream_settings(self) -> dict[str, Any]:
        """:func:`pymysql.connect` arguments of this endpoint, for a binary log reader (python-mysql-replication)."""
        ep = self.endpoint
        return {"host": ep.host, "port": ep.port, "user": ep.user, "password": self._password.reveal(),
                "connect_timeout": ep.connect_timeout, "read_timeout": ep.read_timeout, **ep.tls_options()}

    def reconnect(self) -> None:
        """Open a new connection (after a failover or a lost connection); identity is detected again."""
        self.close()
        self._identity = None
        self._dialect = None
        self._conn = self._open()

    def close(self) -> None:
        if self._conn.open:
            self._conn.close()

    @property
    def open(self) -> bool:
        return bool(self._conn.open)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(endpoint: Endpoint, password: str) -> Server:
    """Connect to *endpoint*; raises ConnectionFailed / UnknownHost / AuthenticationFailed / ..."""
    return Server(endpoint, password)


ER_SP_DOES_NOT_EXIST = 1305


def keeps_out_of_binlog(server: Server) -> bool:
    """Whether this session can keep its statements out of the binary log, probed (off, then on
    again) the way its server offers (:attr:`Dialect.session_binlog_way`): ``SET SESSION
    sql_log_bin`` (refused without SESSION_VARIABLES_ADMIN or more, e.g. for Aurora 3's master user),
    ``mysql.rds_disable_session_binlog`` (Aurora 2.12+), or nothing (older Aurora 2)."""
    try:
        off = server.dialect.session_binlog(False)
    except UnsupportedServer:
        return False                                   # known without asking
    try:
        server.execute(off)
    except PrivilegeMissing:
        return False
    except QueryFailed as e:
        if e.errno != ER_SP_DOES_NOT_EXIST:
            raise
        return False
    server.execute(server.dialect.session_binlog(True))
    return True

