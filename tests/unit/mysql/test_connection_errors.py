"""connection.py: PyMySQL errors become runbook errors naming role, host:port and what to check.

Connection failures are produced for real (a closed port, an unresolvable name, a socket that never
answers); server-side errors are the real ones recorded from MySQL 9.7 in data/mysql97_errors.txt.
"""
from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from runbook_lib.core.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ParameterError,
    PrivilegeMissing,
    QueryFailed,
    RunbookError,
    UnknownHost,
)
from runbook_lib.mysql.connection import Endpoint, connect, map_error, privilege_from_message
from runbook_lib.mysql.sql import Sql
from tests.support import UNIT_DATA

DATA = UNIT_DATA
PASSWORD = "pw-that-must-never-show-9431"


def recorded_errors() -> dict[str, dict[str, Any]]:
    lines = (DATA / "mysql97_errors.txt").read_text().splitlines()
    return {r["label"]: r for r in (json.loads(line) for line in lines if not line.startswith("#"))}


ERRORS = recorded_errors()


def replay(label: str) -> tuple[pymysql.err.MySQLError, str]:
    """The recorded error rebuilt as PyMySQL raised it (same class, errno, message), and its statement."""
    r = ERRORS[label]
    cls = getattr(pymysql.err, r["class"])
    return (cls(r["errno"], r["message"]) if r["errno"] else cls(0, "")), r["statement"]


def endpoint(port: int = 3306, host: str = "127.0.0.1", **kw: Any) -> Endpoint:
    return Endpoint(role="source", host=host, port=port, user="dba", **kw)


def assert_no_secret(err: BaseException) -> None:
    for text in (str(err), repr(err), str(err.__cause__), repr(err.__cause__), str(err.args)):
        assert PASSWORD not in text


@pytest.fixture
def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections but never sends MySQL's greeting."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    yield s.getsockname()[1]
    s.close()


# --- real connection failures, no server needed -----------------------------------

def test_refused(closed_port: int) -> None:
    with pytest.raises(ConnectionFailed) as info:
        connect(endpoint(closed_port), PASSWORD)
    err = info.value
    assert type(err) is ConnectionFailed
    assert f"[source] cannot connect to 127.0.0.1:{closed_port}: connection refused" in str(err)
    assert "firewall" in err.hint
    assert isinstance(err.__cause__, pymysql.err.OperationalError) and err.__cause__.args[0] == 2003
    assert (err.server, err.host, err.port) == ("source", "127.0.0.1", closed_port)
    assert_no_secret(err)


def test_unknown_host() -> None:
    with pytest.raises(UnknownHost) as info:
        connect(endpoint(3306, host="no-such-host.invalid", connect_timeout=3), PASSWORD)
    assert "no-such-host.invalid:3306: unknown host name" in str(info.value)
    assert "DNS" in info.value.hint
    assert isinstance(info.value.__cause__, pymysql.err.OperationalError)
    assert_no_secret(info.value)


def test_timed_out(silent_port: int) -> None:
    with pytest.raises(ConnectionFailed) as info:
        connect(endpoint(silent_port, connect_timeout=0.5, read_timeout=0.5), PASSWORD)
    assert f"127.0.0.1:{silent_port}: timed out" in str(info.value)
    assert "refused" not in str(info.value)
    assert_no_secret(info.value)


# --- recorded server errors ----------------------------------------------------------

def test_recorded_authentication_failure() -> None:
    exc, _ = replay("auth")
    err = map_error(exc, endpoint(29101))
    assert isinstance(err, AuthenticationFailed)
    assert str(err).startswith("[source] access denied for user 'dba' at 127.0.0.1:29101")
    assert "secret that holds its password" in err.hint


@pytest.mark.parametrize("label, privilege", [
    ("db_denied", "access to database mysql"),
    ("table_denied", "SELECT on table user"),
    ("column_denied", "SELECT on column id of table t"),
    ("need_privilege", "SUPER or REPLICATION_SLAVE_ADMIN"),
    ("need_one_of_list", "SUPER or REPLICATION CLIENT"),
    ("routine_denied", "EXECUTE on routine mysql.rds_start_replication"),
    ("rds_sysinfo_denied", "SELECT on table rds_sysinfo"),
    ("set_global_denied", "SUPER or SYSTEM_VARIABLES_ADMIN"),
])
def test_recorded_privilege_errors(label: str, privilege: str) -> None:
    exc, statement = replay(label)
    err = map_error(exc, endpoint(29101), statement)
    assert isinstance(err, PrivilegeMissing)
    assert err.privilege == privilege and err.user == "dba" and err.server == "source"
    assert err.statement == (statement or "connecting to 127.0.0.1:29101")
    assert privilege in err.hint


def test_privilege_from_unknown_message() -> None:
    assert privilege_from_message("something else") == "a privilege (see the server's message)"


@pytest.mark.parametrize("label, errno", [
    ("unknown_variable", 1193), ("no_rds_sysinfo", 1146), ("duplicate_key", 1062), ("syntax", 1064),
])
def test_recorded_query_failures(label: str, errno: int) -> None:
    exc, statement = replay(label)
    err = map_error(exc, endpoint(29101), statement)
    assert type(err) is QueryFailed
    assert (err.errno, err.statement, err.detail) == (errno, statement, ERRORS[label]["message"])
    assert f"[source] error {errno} running" in str(err) and "127.0.0.1:29101" in err.hint


def test_recorded_connection_lost_during_query() -> None:
    exc, statement = replay("killed")
    err = map_error(exc, endpoint(29101), statement)
    assert type(err) is ConnectionFailed
    assert "connection lost (Lost connection to MySQL server during query) while running 'SELECT 1'" in str(err)
    assert "reconnect()" in err.hint
    exc, statement = replay("after_killed")
    err = map_error(exc, endpoint(29101), statement)
    assert type(err) is ConnectionFailed and "the connection is closed" in str(err)


def test_recorded_read_timeout_during_query() -> None:
    exc = pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query (timed out)")
    err = map_error(exc, endpoint(29101, read_timeout=60), "SELECT SLEEP(100)")
    assert "no answer within read_timeout=60s while running 'SELECT SLEEP(100)'" in str(err)


@pytest.mark.parametrize("label, reason", [
    ("refused", "connection refused"), ("handshake_timeout", "timed out"),
])
def test_recorded_connect_failures(label: str, reason: str) -> None:
    exc, _ = replay(label)
    err = map_error(exc, endpoint(29101))
    assert type(err) is ConnectionFailed and err.reason.startswith(reason)


def test_recorded_unknown_host_without_cause() -> None:
    exc, _ = replay("unknown_host")        # the message alone is enough
    assert isinstance(map_error(exc, endpoint(3306, host="no-such-host.invalid")), UnknownHost)


def test_tls_failure_hint() -> None:
    exc = pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1' ([SSL: "
                                             "CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                             "certificate signature failure (_ssl.c:1006))")
    err = map_error(exc, endpoint(29101, tls="verify_ca", tls_ca="/ca.pem"))
    assert "TLS failed with tls='verify_ca'" in str(err) and "tls_ca" in err.hint


def test_secret_args_never_in_errors() -> None:
    exc, _ = replay("duplicate_key")
    sql = Sql("CREATE USER %s@%s IDENTIFIED BY %s", ("repl", "%", PASSWORD), secret_args=(2,))
    err = map_error(exc, endpoint(29101), sql.shown())
    assert "'********'" in err.statement
    assert_no_secret(err)


def test_every_mapped_error_is_a_runbook_error() -> None:
    for label in ERRORS:
        exc, statement = replay(label)
        assert isinstance(map_error(exc, endpoint(29101), statement), RunbookError)


# --- Endpoint ----------------------------------------------------------------------

def test_endpoint_validation() -> None:
    with pytest.raises(ParameterError, match="source_tls"):
        endpoint(tls="maybe")
    with pytest.raises(ParameterError, match="source_tls_ca"):
        endpoint(tls="verify_ca")
    with pytest.raises(ParameterError, match="source_port"):
        endpoint(0)
    assert endpoint(3306).address == "127.0.0.1:3306"


def test_endpoint_tls_options() -> None:
    import ssl
    assert endpoint(tls="disabled").tls_options() == {"ssl_disabled": True}
    assert endpoint(tls="preferred").tls_options() == {}
    ctx = endpoint(tls="required").tls_options()["ssl"]
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    assert endpoint(tls="verify_ca", tls_ca="/ca.pem").tls_options() == {
        "ssl_ca": "/ca.pem", "ssl_verify_cert": True, "ssl_verify_identity": False}
