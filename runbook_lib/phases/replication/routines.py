"""Phase 5, once both directions run: the source's stored functions and procedures on Aurora
(step ``routines``).  A restore from S3 does not carry them but keeps the triggers, so a trigger that
calls a missing function fails every write to its table (in the lab: each INSERT into
``app_billing.invoice`` on Aurora calls ``app_billing.tax_for``).

* :func:`read_inventory` -> :class:`Inventory`: both sides' routines, Aurora's accounts, the source's
  events; :meth:`Inventory.checks` judges them (pure).
* :func:`plan_routines` -> :class:`RoutinesChange` (step ``routines``): for each routine Aurora lacks,
  its ``SHOW CREATE`` statement with ``IF NOT EXISTS``, run **on the source** in the routine's schema
  with its ``sql_mode``, ``character_set_client`` and ``collation_connection``; then a wait until
  Aurora has executed the source's ``gtid_executed``.  :func:`verify`: NotApplied while one is missing.

Why on the source: from MySQL 8.0.29 ``CREATE FUNCTION|PROCEDURE IF NOT EXISTS`` is binary-logged in
full even when the routine exists (a note, 1304).  The source keeps its routine, the statement
replicates, Aurora creates the routine under the source's GTID, which never comes back.  A CREATE on
Aurora would replicate too (Aurora 3's master user cannot turn ``sql_log_bin`` off): the source would
fail on it with error 1304 and stop replicating from Aurora.  Before 8.0.29 on either side (a MySQL 5.7
source, Aurora 2): on Aurora with its binary logging off where the session can (Aurora 2.12+:
``rds_disable_session_binlog``, :func:`runbook_lib.mysql.connection.keeps_out_of_binlog`), else
UnsupportedServer with what to do by hand.  A definer that is no account on
Aurora (accounts are not migrated either) makes calls fail with error 1449: a warning here.  Events
are listed, not handled.
"""
from __future__ import annotations

import codecs
import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pymysql.charset import charset_by_name

from runbook_lib.checks.channels import executed_gtids, require_running, wait_until_caught_up
from runbook_lib.core.approval import Plan, Step
from runbook_lib.core.display import CheckResult, checks_frame, raise_if_failed, show_checks
from runbook_lib.core.errors import NotApplied, NotCaughtUp, PrivilegeMissing, UnsupportedServer
from runbook_lib.mysql.connection import keeps_out_of_binlog
from runbook_lib.mysql.dialect import ROUTINES_BY_HAND, Dialect
from runbook_lib.mysql.sql import Sql, q

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

__all__ = ["COMPARED", "Definition", "Event", "Inventory", "Routine", "RoutinesChange", "figures",
           "plan_routines", "read_inventory", "show_create", "verify", "where_to_create"]

STEP = "routines"
_NOT_SYSTEM = "NOT IN ('mysql', 'sys', 'information_schema', 'performance_schema')"
ROUTINES_SQL = f"""SELECT r.ROUTINE_TYPE AS kind, r.ROUTINE_SCHEMA AS db, r.ROUTINE_NAME AS name,
    r.DEFINER AS definer, r.SECURITY_TYPE AS security, r.ROUTINE_DEFINITION AS definition,
    r.DTD_IDENTIFIER AS returns, r.IS_DETERMINISTIC AS is_deterministic, r.SQL_DATA_ACCESS AS data_access,
    r.SQL_MODE AS sql_mode, r.CHARACTER_SET_CLIENT AS character_set_client,
    r.COLLATION_CONNECTION AS collation_connection, r.ROUTINE_COMMENT AS comment,
    (SELECT GROUP_CONCAT(CONCAT_WS(' ', p.PARAMETER_MODE, p.PARAMETER_NAME, p.DTD_IDENTIFIER)
            ORDER BY p.ORDINAL_POSITION SEPARATOR ', ')
       FROM information_schema.PARAMETERS p WHERE p.SPECIFIC_SCHEMA = r.ROUTINE_SCHEMA
        AND p.SPECIFIC_NAME = r.SPECIFIC_NAME AND p.ROUTINE_TYPE = r.ROUTINE_TYPE
        AND p.ORDINAL_POSITION > 0) AS parameters
    FROM information_schema.ROUTINES r WHERE r.ROUTINE_SCHEMA {_NOT_SYSTEM}"""
EVENTS_SQL = ("SELECT EVENT_SCHEMA AS db, EVENT_NAME AS name, STATUS AS status FROM information_schema.EVENTS "
              f"WHERE EVENT_SCHEMA {_NOT_SYSTEM}")
#: What must be the same on both sides, in the order differences are named.
COMPARED = ("parameters", "returns", "definition", "definer", "security", "is_deterministic", "data_access",
            "sql_mode", "character_set_client", "collation_connection", "comment")
WHY_ON_THE_SOURCE = (
    "Run on the source, not on Aurora: there each statement only adds a note (1304, the routine exists) and is "
    "binary-logged, so it replicates and Aurora creates the routine under the source's GTID. Aurora's master "
    "user cannot keep a statement out of its binary log: a CREATE on Aurora would reach the source, fail there "
    "with error 1304 and stop the source's replication from Aurora.")
WHY_ON_AURORA = (
    "Created on Aurora with its binary logging off for this session: one side has no CREATE ... IF NOT EXISTS "
    "(MySQL 8.0.29+), so the source, which has the routine, cannot run a CREATE that replicates (a plain one "
    "fails there with 1304), and a binary-logged CREATE on Aurora would reach the source, fail there with 1304 "
    "and stop its replication from Aurora. Unlogged on Aurora it replicates nowhere.")
EVENTS_ADVICE = ("events are not handled by this step: create them on Aurora if needed and keep each enabled "
                 "on one side only, or it runs twice")


# --- what each side has ------------------------------------------------------------------------

@dataclass(frozen=True)
class Routine:
    """One stored function or procedure as information_schema shows it; ``definer`` is 'user@host'."""

    kind: str                                    # FUNCTION | PROCEDURE
    schema: str
    name: str
    definer: str
    security: str = "DEFINER"
    facts: tuple[tuple[str, str], ...] = ()      # (name from COMPARED, value as text)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Routine:
        facts = tuple((f, "" if row.get(f) is None else str(row[f])) for f in COMPARED)
        return cls(str(row["kind"]), str(row["db"]), str(row["name"]), str(row["definer"]),
                   str(row["security"]), facts)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.schema}.{self.name}"

    @property
    def key(self) -> tuple[str, str, str]:
        return self.kind, self.schema, self.name.lower()     # routine names are case-insensitive

    @property
    def account(self) -> tuple[str, str]:
        user, _, host = self.definer.rpartition("@")
        return user, host.lower()

    def differences(self, other: Routine) -> list[str]:
        """The COMPARED names whose values differ from *other*'s."""
        theirs = dict(other.facts)
        return [f for f, v in self.facts if theirs.get(f) != v]


@dataclass(frozen=True)
class Event:
    label: str            # 'EVENT schema.name'
    status: str           # on the source: ENABLED | DISABLED | SLAVESIDE_DISABLED
    on_aurora: str        # its status on Aurora, or 'missing'


@dataclass(frozen=True)
class Inventory:
    """Both sides' routines, the accounts Aurora has (user, lower-case host), the source's events."""

    source: tuple[Routine, ...]
    aurora: tuple[Routine, ...]
    aurora_accounts: frozenset[tuple[str, str]] = frozenset()
    events: tuple[Event, ...] = ()

    @property
    def missing(self) -> tuple[Routine, ...]:
        """The source's routines that Aurora lacks."""
        have = {r.key for r in self.aurora}
        return tuple(r for r in self.source if r.key not in have)

    def definer_missing(self, r: Routine) -> bool:
        """SQL SECURITY DEFINER, and the definer is no account on Aurora: calls fail there (1449)."""
        return r.security.upper() == "DEFINER" and r.account not in self.aurora_accounts

    def checks(self) -> list[CheckResult]:
        """Per source routine: missing or different on Aurora fails, a definer Aurora lacks warns.
        Routines only on Aurora and the source's events are information."""
        theirs, mine, rows = {r.key: r for r in self.aurora}, {r.key for r in self.source}, []
        for r in sorted(self.source, key=lambda x: x.label):
            other = theirs.get(r.key)
            definer = f"definer {r.definer}" + ("" if r.security.upper() == "DEFINER" else " (SQL SECURITY INVOKER)")
            if other is None:
                rows.append(CheckResult(r.label, definer, "missing", "fail", f"apply step '{STEP}' (05_replication): "
                                        "it is created on the source with IF NOT EXISTS and replicates"))
            elif differ := r.differences(other):
                rows.append(CheckResult(r.label, definer, "differs: " + ", ".join(differ), "fail",
                                        "Aurora's copy is not the source's: in a quiet window DROP ... IF EXISTS "
                                        "and CREATE it again on the source (both replicate)"))
            elif self.definer_missing(r):
                rows.append(CheckResult(r.label, definer, f"same; no account {r.definer}", "warn",
                                        "calls fail with error 1449 until the definer exists on Aurora "
                                        "(08_cutover copies a scope's accounts at its first cut-over)"))
            else:
                rows.append(CheckResult(r.label, definer, "same", "pass"))
        rows += [CheckResult(r.label, "", f"only on Aurora, definer {r.definer}", "info")
                 for r in sorted(self.aurora, key=lambda x: x.label) if r.key not in mine]
        return rows + [CheckResult(e.label, e.status, e.on_aurora, "info", EVENTS_ADVICE) for e in self.events]

    def to_frame(self) -> pd.DataFrame:
        return checks_frame(self.checks())


def _routines(srv: Server) -> tuple[Routine, ...]:
    return tuple(Routine.from_row(r) for r in srv.query(ROUTINES_SQL))


def read_inventory(rb: Session) -> Inventory:
    """Both sides' routines, Aurora's accounts, the source's events (and whether Aurora has them)."""
    src, aur = rb.source(), rb.aurora()
    accounts = frozenset((str(r["User"]), str(r["Host"]).lower())
                         for r in aur.query("SELECT User, Host FROM mysql.user"))
    on_aurora = {(r["db"], r["name"]): str(r["status"]) for r in aur.query(EVENTS_SQL)}
    events = tuple(Event(f"EVENT {r['db']}.{r['name']}", str(r["status"]),
                         on_aurora.get((r["db"], r["name"]), "missing")) for r in src.query(EVENTS_SQL))
    return Inventory(_routines(src), _routines(aur), accounts, events)


# --- the statements ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Definition:
    """What recreates one routine: its SHOW CREATE statement with IF NOT EXISTS, and the session
    values it was created with."""

    routine: Routine
    statement: str
    sql_mode: str
    character_set_client: str
    collation_connection: str
    where: str = "source"        # 'aurora': created there with its binary logging off (see _definitions)

    def session(self) -> Sql:
        return Sql("SET SESSION sql_mode = %s, character_set_client = %s, collation_connection = %s",
                   (self.sql_mode, self.character_set_client, self.collation_connection))

    def encoded(self) -> bytes:
        """The statement in the routine's character_set_client, as the server will read it."""
        try:
            codec = codecs.lookup(charset_by_name(self.character_set_client).encoding).name
        except (KeyError, LookupError) as e:
            raise UnsupportedServer("source", f"{self.routine.label} was created with character_set_client "
                                    f"{self.character_set_client}, which this runbook cannot encode",
                                    hint=ROUTINES_BY_HAND) from e
        return self.statement.encode(codec)

    def shown(self) -> str:
        return f"USE {q(self.routine.schema)}; {self.session()}; {self.statement}"


def show_create(srv: Server, r: Routine) -> dict[str, Any]:
    """SHOW CREATE FUNCTION|PROCEDURE: statement, sql_mode, character_set_client, collation_connection."""
    shown = f"SHOW CREATE {r.kind} {q(r.schema)}.{q(r.name)}"
    row = srv.query_one(shown)
    if not (row and row.get(f"Create {r.kind.capitalize()}")):     # NULL: the account cannot see the body
        raise PrivilegeMissing(srv.role, srv.endpoint.user, "SHOW_ROUTINE (or SELECT on mysql.*)", shown)
    return {"statement": row[f"Create {r.kind.capitalize()}"],
            **{k: row[k] for k in ("sql_mode", "character_set_client", "collation_connection")}}


def where_to_create(source: Dialect, aurora: Dialect, aurora_unlogged: bool) -> str:
    """Where missing routines are created (pure): 'source' when both sides know CREATE ... IF NOT
    EXISTS (8.0.29+); else 'aurora' when this session can keep its statements out of Aurora's binary
    log (``aurora_unlogged``: Aurora 2.12+'s procedure, or SESSION_VARIABLES_ADMIN on Aurora 3); else ''
    (by hand)."""
    if source.creates_routines_if_not_exists and aurora.creates_routines_if_not_exists:
        return "source"
    return "aurora" if aurora_unlogged else ""


def _definitions(rb: Session, missing: tuple[Routine, ...]) -> tuple[Definition, ...]:
    """Where and how each missing routine is created: on the source with IF NOT EXISTS (replicates;
    no privilege needed) when both sides know it (8.0.29+); else on Aurora, unlogged, when this session
    can keep its statements out of Aurora's binary log (Aurora 2.12+: rds_disable_session_binlog, e.g.
    a MySQL 5.7 source); else UnsupportedServer with what to do by hand."""
    src, aur = rb.source(), rb.aurora()
    too_old = [d for d in (src.dialect, aur.dialect) if not d.creates_routines_if_not_exists]
    where = where_to_create(src.dialect, aur.dialect, bool(missing and too_old) and keeps_out_of_binlog(aur))
    on_aurora = where == "aurora"
    if missing and not where:
        raise UnsupportedServer(too_old[0].role, f"Aurora lacks {', '.join(r.label for r in missing)}, and "
                                f"{too_old[0].identity.describe()} has no CREATE FUNCTION/PROCEDURE IF NOT "
                                "EXISTS (MySQL 8.0.29+), and Aurora cannot keep this session's statements out "
                                "of its binary log: nothing was planned", hint=ROUTINES_BY_HAND)
    out = []
    for r in missing:
        found = show_create(src, r)
        if on_aurora:
            out.append(Definition(r, found.pop("statement"), **found, where="aurora"))
        else:
            statement = src.dialect.create_routine_if_not_exists(found.pop("statement"), replica=aur.dialect)
            out.append(Definition(r, statement, **found))
        out[-1].encoded()                                # refuses an unknown character set now, not later
    return tuple(out)


# --- plan and apply ------------------------------------------------------------------------------

@dataclass(frozen=True)
class RoutinesChange:
    """``rb.gate.apply(change.plan, change.apply)``."""

    plan: Plan
    definitions: tuple[Definition, ...] = ()
    replan: Callable[[], RoutinesChange] | None = field(default=None, repr=False)
    rb: Any = field(default=None, repr=False)
    timeout: float = 300.0

    def apply(self) -> pd.DataFrame:
        """Plan again (PlanStale if the servers changed), run each statement on the source on a
        connection of its own, wait until Aurora has executed the source's transactions."""
        import pandas as pd

        from runbook_lib.mysql.connection import connect
        fresh = self.replan() if self.replan else self
        self.plan.require_unchanged(fresh.plan)
        p, rows = self.rb.params, []
        on_aurora = [d for d in fresh.definitions if d.where == "aurora"]
        if on_aurora:
            with connect(p.aurora_endpoint(), self.rb.secret("aurora_admin_password")) as aur:
                aur.execute(aur.dialect.session_binlog(False))
                try:
                    rows += [("aurora", f"create {d.routine.label}, not binary-logged", _create(aur, d))
                             for d in on_aurora]
                finally:
                    aur.execute(aur.dialect.session_binlog(True))
        with connect(p.source_endpoint(), self.rb.secret("source_admin_password")) as src:
            rows += [("source", f"create {d.routine.label} if not exists", _create(src, d))
                     for d in fresh.definitions if d.where == "source"]
            target = executed_gtids(src)
        seconds = _wait(self.rb, target, self.timeout)
        have = {r.key for r in _routines(self.rb.aurora())}
        arrived = [d.routine.label for d in fresh.definitions if d.routine.key in have]
        rows.append(("aurora", "wait for replication", (f"caught up after {seconds:.1f} s; {len(arrived)} of "
                                                         f"{len(fresh.definitions)} routine(s) present")))
        return pd.DataFrame([(n, *r) for n, r in enumerate(rows, 1)], columns=["#", "target", "action", "result"])


def _create(srv: Server, d: Definition) -> str:
    """Run one definition in its schema with its session values; 'done' and the server's notes."""
    srv.execute(f"USE {q(d.routine.schema)}")
    srv.execute(d.session())
    srv.execute(d.encoded())
    notes = "; ".join(f"{w['Level']} {w['Code']}: {w['Message']}" for w in srv.query("SHOW WARNINGS"))
    return "done" + (f" ({notes})" if notes else "")


def _wait(rb: Session, target: Any, timeout: float) -> float:
    """wait_until_caught_up on Aurora in slices of 5 s; between them ReplicationError (require_running)
    as soon as a direction stops, e.g. Aurora's applier on the CREATE."""
    started = time.monotonic()
    while True:
        remaining = timeout - (time.monotonic() - started)
        try:
            wait_until_caught_up(rb.aurora(), target, min(5.0, max(remaining, 0.1)))
            return time.monotonic() - started
        except NotCaughtUp as e:
            require_running(rb)
            if remaining <= 5.0:
                raise NotCaughtUp("aurora", e.missing, timeout, cause=e.cause, hint=e.hint) from e


def plan_routines(rb: Session, timeout: float = 300.0) -> RoutinesChange:
    """The source's routines that Aurora lacks, created on the source with IF NOT EXISTS (step
    ``routines``).  Needs both directions running (NotApplied / ReplicationError otherwise)."""
    require_running(rb)
    inv = read_inventory(rb)
    definitions = _definitions(rb, inv.missing)
    steps = [Step("source", f"create {d.routine.label} if not exists (replicates to Aurora)", d.shown(),
                  undo="a DROP on either side replicates and drops both copies") if d.where == "source" else
             Step("aurora", f"create {d.routine.label}, not binary-logged (stays on Aurora)",
                  f"{rb.aurora().dialect.session_binlog(False)}; {d.shown()}; {rb.aurora().dialect.session_binlog(True)}",
                  undo=f"the same DROP {d.routine.kind} on Aurora, not binary-logged") for d in definitions]
    if any(d.where == "source" for d in definitions):
        steps.append(Step("aurora", "wait for replication", f"until Aurora has executed the source's "
                          f"gtid_executed (at most {timeout:g} s)", reversible=True, undo="—"))
    notes = [WHY_ON_THE_SOURCE if all(d.where == "source" for d in definitions) else WHY_ON_AURORA]
    lacking = sorted({d.routine.definer for d in definitions if inv.definer_missing(d.routine)})
    if lacking:
        notes.append(f"Definers without an account on Aurora: {', '.join(lacking)}. The routines are created "
                     "all the same; calls fail with error 1449 until the accounts exist there.")
    if inv.events:
        notes.append("Events are not handled here: " + ", ".join(e.label for e in inv.events))
    plan = Plan(STEP, "stored functions and procedures on Aurora", tuple(steps), "\n".join(notes))
    return RoutinesChange(plan, definitions, functools.partial(plan_routines, rb, timeout), rb, timeout)


# --- checks --------------------------------------------------------------------------------------

def verify(rb: Session) -> list[CheckResult]:
    """Show the routines of both sides with a verdict; NotApplied (step ``routines``) while Aurora
    lacks one, CheckFailed when one differs.  A definer Aurora lacks is a warning."""
    inv = read_inventory(rb)
    results = inv.checks()
    show_checks(results, "stored routines on Aurora")
    if inv.missing:
        raise NotApplied(", ".join(r.label for r in inv.missing) + " on Aurora", STEP)
    raise_if_failed(results, "stored routines on Aurora")
    return results


def figures(results: Iterable[CheckResult]) -> dict:
    """What the run summary keeps: each routine's and event's verdict and what Aurora has."""
    return {r.item: {"status": r.status, "aurora": str(r.aurora)} for r in results}
