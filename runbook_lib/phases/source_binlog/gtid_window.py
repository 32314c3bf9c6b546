"""Phase 2, the WARN window: enforce_gtid_consistency held at WARN under normal load before ON.

MySQL's procedure (Reference Manual, "Enabling GTID Transactions Online"): set
``enforce_gtid_consistency=WARN``, let the server run with its normal workload for a while and
check that the error log has no GTID-consistency warning; only then set it ON, because ON makes
the server refuse those statements (an application error in production).  :func:`observe` holds
the window and collects every "Statement violates GTID consistency" warning logged meanwhile:

* MySQL 8.0.22+: from ``performance_schema.error_log`` (the SQL is spelled by
  :meth:`runbook_lib.mysql.dialect.Dialect.gtid_unsafe_logged`);
* older servers: from the error log file (``@@log_error``) when this kernel runs on the source's
  host and can read it; otherwise :func:`observation_source` says so and the plan stops before
  anything changes (the DBA checks the log by hand and sets the window to 0).

Each warning names the connection that ran it; while that connection is still open, its account
and the last statement that raised a warning (``performance_schema.events_statements_history``)
are added.  :func:`require_none` stops the phase at WARN with the list.
"""
from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runbook_lib.core.errors import CheckFailed
from runbook_lib.mysql.dialect import dialect_for

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from runbook_lib.mysql.connection import Server

UNSAFE = "Statement violates GTID consistency"
POLL_SECONDS = 5.0   # performance_schema.error_log is a ring buffer: read it often in a long window
# 8.0+: "2026-12-06T06:26:11.175530Z 16 [Warning] [MY-013098] [Server] Statement violates ..."
# 5.7:  "2026-12-06T06:26:11.175530Z 16 [Warning] Statement violates ..."
_LOG_LINE = re.compile(r"^(?P<logged>\S+)\s+(?P<thread>\d+)\s+\[(?P<prio>[^\]]+)\]\s+"
                       r"(?:\[(?P<code>MY-\d+)\]\s+\[[^\]]*\]\s+)?(?P<data>.*)$")


@dataclass(frozen=True)
class UnsafeStatement:
    """One GTID-consistency warning the server logged during the window."""

    logged: str
    connection: int          # the connection (processlist) id that ran it
    code: str                # MY-013098 ... ('' in a 5.7 error log)
    message: str
    account: str = ""        # user@host of the connection, while it is open
    statement: str = ""      # its last statement with a warning (performance_schema), while it is open

    def line(self) -> str:
        who = f"connection {self.connection}" + (f" ({self.account})" if self.account else "")
        what = f": {self.statement}" if self.statement else ""
        return f"{self.logged} {who}{what} -- {self.message}"


@dataclass(frozen=True)
class WindowResult:
    """What the window saw."""

    seconds: float
    source: str
    found: tuple[UnsafeStatement, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd
        return pd.DataFrame([{"logged": u.logged, "connection": u.connection, "account": u.account,
                              "statement": u.statement, "code": u.code, "message": u.message} for u in self.found],
                            columns=["logged", "connection", "account", "statement", "code", "message"])

    def verdict(self) -> str:
        if not self.found:
            return (f"PASS: no GTID-unsafe statement in {self.seconds:g} s at enforce_gtid_consistency=WARN "
                    f"(read from {self.source})")
        return (f"FAIL: {len(self.found)} GTID-unsafe statement(s) in {self.seconds:g} s at "
                f"enforce_gtid_consistency=WARN (read from {self.source})")


def parse_log_lines(text: str) -> list[UnsafeStatement]:
    """The GTID-consistency warnings among error log lines (5.7 and 8.0+ formats)."""
    found = []
    for raw in text.splitlines():
        m = _LOG_LINE.match(raw.strip())
        if m and m["data"].startswith(UNSAFE):
            found.append(UnsafeStatement(m["logged"], int(m["thread"]), m["code"] or "", m["data"].strip()))
    return found


def _log_file(server: Server) -> Path | None:
    """The source's error log file when this machine is the source's host and can read it."""
    v = server.variables("log_error", "datadir", "hostname")
    path = v.get("log_error") or ""
    if not path or path == "stderr" or (v.get("hostname") or "") != socket.gethostname():
        return None
    file = Path(path) if os.path.isabs(path) else Path(v.get("datadir") or "") / path
    return file if file.is_file() and os.access(file, os.R_OK) else None


def observation_source(server: Server) -> str:
    """Where the window reads the warnings from; '' when it cannot read them from here."""
    if dialect_for(server.identity, role=server.role).gtid_unsafe_logged("") is not None:
        return "performance_schema.error_log"
    file = _log_file(server)
    return f"error log {file}" if file else ""


def _from_table(server: Server, since) -> list[UnsafeStatement]:
    sql = dialect_for(server.identity, role=server.role).gtid_unsafe_logged(since)
    return [UnsafeStatement(str(r["LOGGED"]), int(r["THREAD_ID"]), str(r["ERROR_CODE"]), str(r["DATA"]))
            for r in server.query(sql)]


def _named(server: Server, found: UnsafeStatement) -> UnsafeStatement:
    """Add the account and the statement while the connection is still open."""
    rows = server.query("SELECT t.PROCESSLIST_USER u, t.PROCESSLIST_HOST h, s.SQL_TEXT q "
                        "FROM performance_schema.threads t LEFT JOIN performance_schema.events_statements_history s "
                        "ON s.THREAD_ID = t.THREAD_ID AND s.WARNINGS > 0 WHERE t.PROCESSLIST_ID = %s "
                        "ORDER BY s.EVENT_ID DESC LIMIT 1", (found.connection,))
    if not rows:
        return found
    r = rows[0]
    text = " ".join(str(r["q"] or "").split())
    return UnsafeStatement(found.logged, found.connection, found.code, found.message,
                           f"{r['u']}@{r['h']}" if r["u"] else "", text[:200] + ("..." if len(text) > 200 else ""))


def observe(server: Server, seconds: float, *, say=print) -> WindowResult:
    """Hold the window: wait ``seconds`` at WARN, collecting the GTID-unsafe warnings logged meanwhile."""
    source = observation_source(server)
    if not source:
        raise CheckFailed("GTID consistency window", ["the source's error log cannot be read from here"],
                          hint="run the phase on the source's host, or check its error log for 'Statement "
                               "violates GTID consistency' yourself and set source_gtid_warn_seconds to 0")
    since = server.scalar("SELECT NOW(6)")
    file = _log_file(server) if source.startswith("error log") else None
    offset = file.stat().st_size if file else 0
    say(f"enforce_gtid_consistency=WARN: watching {source} for {seconds:g} s under the normal load...")
    seen: dict[tuple, UnsafeStatement] = {}
    deadline = time.monotonic() + seconds
    while True:
        if file:
            with file.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            batch = parse_log_lines(chunk.decode(errors="replace"))
        else:
            batch = _from_table(server, since)
        for u in batch:
            key = (u.logged, u.connection, u.message)
            if key not in seen:
                seen[key] = _named(server, u)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(POLL_SECONDS, left))
    return WindowResult(seconds, source, tuple(seen.values()))


def require_none(result: WindowResult) -> None:
    """Stop at WARN, naming each unsafe statement, when the window saw any."""
    print(result.verdict())
    if result.found:
        raise CheckFailed("GTID consistency window (enforce_gtid_consistency stays WARN)",
                          [u.line() for u in result.found],
                          hint="change these statements in the application (MySQL: 'Restrictions on Replication "
                               "with GTIDs'), then run this phase again: it holds WARN for a new window and goes "
                               "on to ON only when no statement violates GTID consistency")
