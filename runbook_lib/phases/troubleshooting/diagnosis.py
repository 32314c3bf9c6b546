"""Troubleshooting, part 1: which channel fails, on what, and what the failed transaction tried to do.

A *channel* is named by the replica it lives on, as its approval step is: ``aurora`` is Aurora's
channel replicating from the source (step ``fix:aurora``), ``source`` is the source's channel
replicating from Aurora (step ``fix:source``).

:func:`diagnose` reads both channels (``SHOW REPLICA STATUS``, ``performance_schema``'s applier
workers) and, for an applier error, the failed transaction's events from the replica's relay log
(``SHOW RELAYLOG EVENTS``; the originating side's ``SHOW BINLOG EVENTS`` when the relay log no longer
has it; :mod:`runbook_lib.phases.troubleshooting.failed_transaction`).  Both statements need only REPLICATION SLAVE, which Aurora's master user has.  The
conflicting primary key is taken from the error text where MySQL prints it (1062 ``Duplicate entry``);
a 1032 names no row, so the rows are found by comparing both sides after the channel runs again
(:mod:`runbook_lib.phases.troubleshooting.repair`).  Reads only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from runbook_lib.checks.channels import DIRECTIONS, REPLICA_ROLE, WRITER_ROLE, directions
from runbook_lib.core.display import show_table
from runbook_lib.core.errors import ParameterError
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.status import ReplicaStatus
from runbook_lib.phases.troubleshooting.failed_transaction import (
    ROW_EVENT_TYPE,
    ErrorFacts,
    TxEvent,
    parse_error,
    read_events,
    short_error,
)

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

CHANNELS = ("aurora", "source")
DIRECTION_OF = {REPLICA_ROLE[d]: d for d in DIRECTIONS}          # 'aurora' -> 'source → aurora'
FIXES = ("auto", "restart", "skip", "repair")
ROW_ERRNOS = frozenset({1032, 1062})             # row not found / duplicate key: a data conflict
PURGED_ERRNOS = frozenset({1236, 13114})         # the source purged binary logs the replica needs
DIAGNOSIS_COLUMNS = ["channel", "direction", "IO thread", "SQL thread", "state", "error", "failing GTID",
                     "what it changed", "conflicting key", "fix step"]
EVENT_COLUMNS = ["channel", "GTID", "#", "event", "table", "info"]
OPTION_COLUMNS = ["channel", "option", "what it does", "risk", "chosen"]
@dataclass(frozen=True)
class Problem:
    """One channel as troubleshooting sees it.

    ``kind``: 'ok', 'missing' (no channel), 'connecting', 'stopped' (a thread stopped without error),
    'row-conflict' (1032/1062), 'sql-error' (another applier error), 'purged-binlogs' (1236/13114),
    'io-error' (another receiver error: network, login; fixed in 05_replication, not here).
    """

    channel: str
    direction: str
    kind: str
    io_running: str = ""
    sql_running: str = ""
    errno: int = 0
    error: str = ""
    facts: ErrorFacts = ErrorFacts()
    events: tuple[TxEvent, ...] = ()
    events_from: str = ""                  # where the events were read ('' when not found)
    missing: str = ""                      # purged-binlogs: GTIDs to bring over another way

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def gtid(self) -> str:
        return self.facts.gtid

    @property
    def writer(self) -> str:
        """The side the channel replicates from (where the failed transaction was written)."""
        return WRITER_ROLE[self.direction]

    @property
    def step_id(self) -> str:
        return f"fix:{self.channel}"

    @property
    def tables(self) -> tuple[str, ...]:
        """Tables the failed transaction changed rows in (its events, else the error's table)."""
        found = [e.table for e in self.events if ROW_EVENT_TYPE.match(e.event) and e.table]
        if self.facts.table and "." in self.facts.table:
            found.append(self.facts.table)
        return tuple(dict.fromkeys(found))

    def changed(self) -> str:
        """'Update_rows on app_billing.payment_log', one per table and event type."""
        pairs = [f"{e.event} on {e.table}" for e in self.events if ROW_EVENT_TYPE.match(e.event)]
        if not pairs and self.facts.event:
            pairs = [f"{self.facts.event} on {self.facts.table}"]
        other = [e.info[:80] for e in self.events if e.event == "Query" and e.info.strip().upper()
                 not in ("BEGIN", "COMMIT")]
        return "; ".join(dict.fromkeys(pairs + other))

    def key_text(self) -> str:
        if self.facts.key:
            return f"{self.facts.key} ({self.facts.key_name})"
        if self.errno == 1032:
            return "not in the message: found by comparing both sides"
        return ""


def classify(status: ReplicaStatus | None) -> tuple[str, int, str]:
    """Pure: (kind, errno, error text) of one channel."""
    if status is None:
        return "missing", 0, ""
    if status.sql_running != "Yes" and status.last_sql_errno:
        kind = "row-conflict" if status.last_sql_errno in ROW_ERRNOS else "sql-error"
        return kind, status.last_sql_errno, status.last_sql_error
    if status.io_running != "Yes" and status.last_io_errno:
        purged = status.last_io_errno in PURGED_ERRNOS or "purged" in status.last_io_error.lower()
        kind = "purged-binlogs" if purged else "io-error"
        return kind, status.last_io_errno, status.last_io_error
    if status.running:
        return "ok", 0, ""
    if status.io_running == "Connecting" and status.sql_running == "Yes":
        return "connecting", status.last_io_errno, status.last_io_error
    return "stopped", 0, ""


def worker_error(replica: Server) -> tuple[int, str, str]:
    """The applier worker's own error (errno, message, applying GTID); the coordinator's text in
    SHOW REPLICA STATUS names no table or key when replica_parallel_workers > 0."""
    row = replica.query_one(replica.dialect.applier_worker_error())
    return (int(row["n"]), str(row["m"] or ""), str(row["g"] or "")) if row else (0, "", "")


def purged_missing(writer: Server, replica: Server) -> GtidSet:
    """GTIDs the writer has purged from its binary logs that the replica has not executed."""
    purged = GtidSet.parse(str(writer.scalar("SELECT @@GLOBAL.gtid_purged") or ""))
    return purged - GtidSet.parse(str(replica.scalar("SELECT @@GLOBAL.gtid_executed") or ""))


def problem_of(rb: Session, direction: str, status: ReplicaStatus | None) -> Problem:
    """Everything known about one channel's trouble."""
    channel, (kind, errno, error) = REPLICA_ROLE[direction], classify(status)
    base = Problem(channel, direction, kind, status.io_running if status else "",
                   status.sql_running if status else "", errno, error)
    replica = rb.aurora() if channel == "aurora" else rb.source()
    writer = rb.source() if channel == "aurora" else rb.aurora()
    if kind in ("row-conflict", "sql-error"):
        w_errno, w_message, w_gtid = worker_error(replica)
        message = w_message or error
        facts = parse_error(message)
        if not facts.gtid and w_gtid:
            facts = ErrorFacts(**{**facts.__dict__, "gtid": w_gtid})
        events, where = read_events(replica, writer, facts.gtid, facts)
        return Problem(**{**base.__dict__, "errno": w_errno or errno, "error": message, "facts": facts,
                          "events": events, "events_from": where})
    if kind == "purged-binlogs":
        missing = purged_missing(writer, replica)
        return Problem(**{**base.__dict__, "facts": parse_error(error), "missing": str(missing)})
    return base


@dataclass(frozen=True)
class Diagnosis:
    """Both channels' :class:`Problem`, in the order aurora, source."""

    problems: tuple[Problem, ...]

    def get(self, channel: str) -> Problem:
        for p in self.problems:
            if p.channel == channel:
                return p
        raise ParameterError("channel", f"{channel!r} is not a channel: use 'aurora' or 'source'")

    @property
    def failing(self) -> list[Problem]:
        return [p for p in self.problems if not p.ok]

    def to_frame(self) -> pd.DataFrame:
        rows = [{"channel": p.channel, "direction": p.direction, "IO thread": p.io_running or "—",
                 "SQL thread": p.sql_running or "—", "state": p.kind,
                 "error": f"{p.errno}: {short_error(p.error)}" if p.errno else "", "failing GTID": p.gtid or p.missing,
                 "what it changed": p.changed(), "conflicting key": p.key_text(),
                 "fix step": "" if p.ok else p.step_id} for p in self.problems]
        return pd.DataFrame(rows, columns=DIAGNOSIS_COLUMNS)

    def events_frame(self) -> pd.DataFrame:
        rows = [{"channel": p.channel, "GTID": p.gtid, "#": n, "event": e.event, "table": e.table,
                 "info": e.info[:120]} for p in self.problems for n, e in enumerate(p.events, 1)]
        return pd.DataFrame(rows, columns=EVENT_COLUMNS)

    def verdict_line(self) -> str:
        if not self.failing:
            return "PASS: both replication channels run without errors"
        return "FAIL: " + "; ".join(f"channel {p.channel} ({p.direction}): {p.kind}"
                                    + (f" {p.errno}" if p.errno else "") for p in self.failing)

    def figures(self) -> dict:
        return {p.channel: {"state": p.kind, "errno": p.errno, "gtid": p.gtid, "tables": list(p.tables),
                            "missing": p.missing} for p in self.problems}


def diagnose(rb: Session, settle: float = 0.0) -> Diagnosis:
    """Read both channels (see :func:`runbook_lib.checks.channels.directions` for *settle*)."""
    statuses = directions(rb, settle=settle)
    return Diagnosis(tuple(problem_of(rb, DIRECTION_OF[c], statuses[DIRECTION_OF[c]]) for c in CHANNELS))


def show_diagnosis(diagnosis: Diagnosis) -> None:
    show_table(diagnosis.to_frame())
    print(diagnosis.verdict_line())


def show_events(diagnosis: Diagnosis) -> None:
    frame = diagnosis.events_frame()
    if frame.empty:
        print("No failed transaction to show (no applier error).")
        return
    show_table(frame)
    for p in diagnosis.problems:
        if p.gtid:
            print(f"{p.channel}: transaction {p.gtid} read from {p.events_from or 'nowhere (not found)'}; "
                  f"tables: {', '.join(p.tables) or 'none named'}")


# --- the options -----------------------------------------------------------------------------------

def choose(problem: Problem, fix: str) -> str:
    """Pure: the fix for *problem* under the notebook's *fix* knob: 'none', 'restart', 'skip', 'repair',
    'purged' (mark the purged GTIDs applied, restart, repair rows), or 'manual' (not fixed here)."""
    if fix not in FIXES:
        raise ParameterError("fix", f"{fix!r} is not one of {', '.join(FIXES)}")
    kind = problem.kind
    if kind == "ok":
        return "none"
    if kind in ("missing", "io-error"):
        return "manual"
    if kind == "purged-binlogs":
        return "purged" if fix in ("auto", "repair") else "manual"
    if kind in ("stopped", "connecting"):
        return "restart"
    if fix == "auto":
        return "repair" if kind == "row-conflict" else "manual"
    return "manual" if fix == "restart" else fix


_OPTIONS = {
    "restart": ("start the channel again (MySQL: START REPLICA; Aurora: stop, then start procedure)",
                "none for a channel stopped by hand; an error comes back at once if there is one"),
    "skip": (("commit an empty transaction under the failing GTID (Aurora: rds_skip_transaction_with_gtid), "
             "then restart"), ("the transaction's changes are LOST on this replica: both sides then differ "
                                  "for its rows until they are repaired")),
    "repair": (("skip it, restart, compare the tables it changed and make the differing rows equal, "
               "keeping one side's version (see 'keep')"), ("the other side's version of those rows is "
                                                           "overwritten; done while applications leave "
                                                           "those rows alone")),
    "purged": (("declare the purged GTIDs applied (gtid_purged; Aurora 3.04+: rds_gtid_purged, older: one "
                "skip per GTID), restart, then repair the rows that differ"), ("rows changed by the lost transactions are copied "
                                                   "from the writer; schema changes are not: re-seed then")),
    "re-seed": ("restore Aurora again from a new backup (notebooks 04 and 05)",
                "hours of work; the only sound fix when much is lost or DDL is involved"),
}


def options_frame(diagnosis: Diagnosis, fix: str = "auto") -> pd.DataFrame:
    """The fixes DBAs use for each failing channel, with their risks; ``chosen`` marks the knob's choice."""
    rows = []
    for p in diagnosis.failing:
        chosen = choose(p, fix)
        fits = {"stopped": ("restart",), "connecting": ("restart",), "row-conflict": ("skip", "repair", "re-seed"),
                "sql-error": ("skip", "re-seed"), "purged-binlogs": ("purged", "re-seed")}.get(p.kind, ())
        for option in fits:
            what, risk = _OPTIONS[option]
            rows.append({"channel": p.channel, "option": option, "what it does": what, "risk": risk,
                         "chosen": "✔" if option == chosen else ""})
        if chosen == "manual":
            rows.append({"channel": p.channel, "option": "manual", "what it does": _manual(p),
                         "risk": "", "chosen": "✔"})
    return pd.DataFrame(rows, columns=OPTION_COLUMNS)


def _manual(p: Problem) -> str:
    if p.kind in ("missing", "io-error"):
        return "not a data problem: fix the connection or the channel with 05_replication (see its advice)"
    if p.kind == "sql-error":
        return "not a row conflict: read the error; run again with fix='skip' only if its changes may be lost"
    return "run again with fix='auto' or 'repair'"


def show_options(diagnosis: Diagnosis, fix: str = "auto") -> None:
    if fix not in FIXES:
        raise ParameterError("fix", f"{fix!r} is not one of {', '.join(FIXES)}")
    frame = options_frame(diagnosis, fix)
    if frame.empty:
        print("Nothing to fix: both channels run.")
        return
    show_table(frame)
