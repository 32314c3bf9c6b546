"""Troubleshooting, part 2: the fixes, each planned and approved as step ``fix:<channel>``.

1. :func:`plan_fixes` gets each failing channel going again, the way its side allows: on the MySQL
   source an empty transaction under the failing GTID (or ``gtid_purged`` for GTIDs the other side
   purged) and ``START REPLICA``; on Aurora ``rds_skip_transaction_with_gtid`` (once per GTID; 3.04+:
   purged GTIDs in one ``rds_gtid_purged``), then
   the stop procedure and the start procedure (after an applier error the receiver still runs, and
   Aurora's start procedure refuses while any thread runs).
2. :func:`compare_affected` compares, with both channels running, the tables the failed transaction
   changed (:mod:`runbook_lib.checks.consistency.comparison`).
3. :func:`plan_row_repairs` makes the rows that differ equal, keeping one side's version:

   * rows to change on the **source**: written there with ``sql_log_bin=0``, so nothing replicates;
   * rows to change on **Aurora**, where this session can keep its statements out of the binary log
     (Aurora 2.12+: ``rds_disable_session_binlog``; Aurora 3: only an account with SESSION_VARIABLES_ADMIN,
     see :func:`runbook_lib.mysql.connection.keeps_out_of_binlog`): written there unlogged, as on the source;
   * otherwise (Aurora 3's master user, Aurora 2 before 2.12) anything written on Aurora replicates back
     to the source, where an INSERT of a row the source has (or a
     DELETE of one it lacks) would stop the source's channel.  So Aurora is never written directly:
     on the source, Aurora's version of the rows is put in place unlogged, then the source's own version
     is written back *logged*.  The source ends as it was; the logged row events replicate to Aurora and
     find there exactly the row versions they expect (by primary key, or by every column in a table
     without one), leaving Aurora with the source's version.

4. :func:`verify`: both channels run and the compared tables hold the same data.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from runbook_lib.checks.channels import directions, executed_gtids, require_running, wait_until_caught_up
from runbook_lib.checks.consistency import comparison as consistency
from runbook_lib.checks.consistency.chunks import DIFFER
from runbook_lib.checks.consistency.comparison import Comparison
from runbook_lib.core.approval import Outcome, Plan, Step
from runbook_lib.core.display import show_table
from runbook_lib.core.errors import CheckFailed, NotApplied, ParameterError, QueryFailed, RunbookError
from runbook_lib.mysql.connection import keeps_out_of_binlog
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.sql import Sql
from runbook_lib.mysql.status import side_by_side
from runbook_lib.phases.troubleshooting.diagnosis import (
    CHANNELS,
    Diagnosis,
    Problem,
    choose,
    classify,
    diagnose,
)
from runbook_lib.phases.troubleshooting.failed_transaction import parse_error
from runbook_lib.phases.troubleshooting.row_sync import differing_rows, row_statements

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

KEEPS = ("writer", "source", "aurora")
MAX_AURORA_SKIPS = 1000      # one procedure call per purged GTID on Aurora; more: re-seed


def _server(rb: Session, role: str) -> Server:
    return rb.source() if role == "source" else rb.aurora()


@dataclass(frozen=True)
class _Act:
    step: Step
    role: str
    sqls: tuple[Sql, ...] = ()
    kind: str = "sql"        # 'sql' | 'aurora_start' | 'unlogged' (binary logging off) | 'logged_tx'


@dataclass(frozen=True)
class Fix:
    """An approval plan and what applies it: ``rb.gate.apply(fix.plan, fix.apply)``."""

    plan: Plan
    acts: tuple[_Act, ...] = ()
    replan: Callable[[], Fix] | None = field(default=None, repr=False)
    rb: Any = field(default=None, repr=False)
    wait_aurora: float = 0.0     # after a re-logged repair: seconds to wait for Aurora to apply it

    def apply(self) -> pd.DataFrame:
        """Plan again (PlanStale if anything changed since the plan was shown), then run every step."""
        fresh = self.replan() if self.replan else self
        self.plan.require_unchanged(fresh.plan, hint="run the diagnosis cell and this cell again, and review "
                                    "the new plan")
        rows = [{"#": n, "target": a.step.target, "action": a.step.action, "result": _run(self.rb, a)}
                for n, a in enumerate(fresh.acts, 1)]
        if self.wait_aurora:
            waited = wait_until_caught_up(self.rb.aurora(), executed_gtids(self.rb.source()), self.wait_aurora)
            rows.append({"#": len(rows) + 1, "target": "aurora", "action": "wait for the repair to replicate",
                         "result": f"applied after {waited:.1f} s"})
        return pd.DataFrame(rows, columns=["#", "target", "action", "result"])


def _act(role: str, sqls: Sequence[Sql], action: str, undo: str = "", kind: str = "sql") -> _Act:
    detail = "; ".join(s.shown() for s in sqls)
    return _Act(Step(role, action, detail if len(detail) <= 600 else detail[:600] + " ...",
                     reversible=bool(undo), undo=undo), role, tuple(sqls), kind)


def _run(rb: Session, act: _Act) -> str:
    srv = _server(rb, act.role)
    if act.kind in ("unlogged", "logged_tx"):
        return _transaction(srv, act.sqls, logged=act.kind == "logged_tx")
    for sql in act.sqls:
        try:
            srv.execute(sql)
        except QueryFailed:
            if act.kind != "aurora_start":
                raise
            # Aurora's start procedure fails when the channel does not run cleanly within seconds;
            # it was started all the same: the next cell shows and judges what it reports.
            return "started, but it does not run cleanly: see the next cell"
    return "done"


def _transaction(srv: Server, sqls: Sequence[Sql], *, logged: bool) -> str:
    """One transaction on ``srv``; with ``logged=False`` kept out of its binary log."""
    d = srv.dialect
    if not logged:
        srv.execute(d.session_binlog(False))
    try:
        srv.execute("BEGIN")
        changed = sum(srv.execute(s) for s in sqls)
        srv.execute("COMMIT")
    except RunbookError:
        if srv.open:
            srv.execute("ROLLBACK")
        raise
    finally:
        if not logged and srv.open:
            srv.execute(d.session_binlog(True))
    return f"{changed} row(s) changed" + ("" if logged else " (not binary-logged)")


# --- 1. get the channel going again -----------------------------------------------------------------

def restart_acts(rb: Session, problem: Problem) -> list[_Act]:
    """Start a channel again the way its side needs; [] when both threads run."""
    srv = _server(rb, problem.channel)
    io, sql = problem.io_running, problem.sql_running
    if srv.identity.is_aurora:
        d = srv.dialect
        if io == "No" and sql == "No":
            return [_act("aurora", [d.start_replication()], "start replication", kind="aurora_start")]
        return [_act("aurora", [d.stop_replication()], "stop replication (a thread still runs, so Aurora's "
                     "start procedure would refuse)"),
                _act("aurora", [d.start_replication()], "start replication", kind="aurora_start")]
    return [_act("source", [srv.dialect.start_replica()], "start replication")]


def _skip_acts(rb: Session, channel: str, gtids: GtidSet, why: str) -> list[_Act]:
    srv = _server(rb, channel)
    d = srv.dialect
    if srv.identity.is_aurora:
        if why.startswith("declare") and d.has_rds_gtid_purged:     # Aurora 3.04+: one call for the set
            return [_act("aurora", [d.gtid_purged(str(gtids))], why, "not reversible: the GTIDs count as executed")]
        if gtids.count() > MAX_AURORA_SKIPS:
            raise RunbookError(f"{gtids.count()} GTIDs to skip one by one on Aurora {srv.identity.aurora_version}",
                               hint="upgrade to Aurora 3.04+ (mysql.rds_gtid_purged), or re-seed (notebooks 04, 05)")
        return [_act("aurora", [d.skip_transaction_with_gtid(g) for g in _each(gtids)], why,
                     "not reversible: the GTIDs count as executed")]
    if why.startswith("declare"):
        return [_act("source", [d.add_gtid_purged(str(gtids))], why, "not reversible: the GTIDs count as executed")]
    return [_act("source", d.skip_gtid_with_empty_transaction(g), why,
                 "not reversible: the GTID counts as executed") for g in _each(gtids)]


def _each(gtids: GtidSet) -> list[str]:
    return [f"{uuid}:{n}" if not tag else f"{uuid}:{tag}:{n}"
            for uuid, tag, lo, hi in gtids.intervals() for n in range(lo, hi + 1)]


def plan_fix(rb: Session, problem: Problem, fix: str = "auto") -> Fix:
    """The plan that gets one channel past its problem (step ``fix:<channel>``)."""
    chosen = choose(problem, fix)
    acts: list[_Act] = []
    notes = [f"channel {problem.channel} ({problem.direction}): {problem.kind}"
             + (f", error {problem.errno}" if problem.errno else "") + f"; fix: {chosen}"]
    if chosen in ("skip", "repair"):
        if not problem.gtid:
            raise RunbookError(f"channel {problem.channel}: the failing GTID is not known",
                               hint="read Last_SQL_Error on the replica and skip it by hand")
        acts += _skip_acts(rb, problem.channel, GtidSet.parse(problem.gtid),
                           f"skip transaction {problem.gtid} ({problem.changed() or 'its events were not found'})")
        notes.append(f"The transaction from {problem.writer} is skipped on {problem.channel}: its changes are not "
                     "applied there. " + ("The next cells compare the tables it changed and plan the repair of "
                                          "the rows that differ." if chosen == "repair" else
                                          "fix='skip': rows are not repaired; the verification shows any "
                                          "difference left."))
    elif chosen == "purged":
        missing = GtidSet.parse(problem.missing)
        if missing:
            acts += _skip_acts(rb, problem.channel, missing, f"declare {missing} applied (they were purged on "
                               f"{problem.writer} before {problem.channel} read them)")
        notes.append(f"{problem.writer} no longer has these transactions. Their rows are brought over by the "
                     "row repair after the channel runs again. Schema changes among them are not: if the "
                     "comparison shows 'columns differ', re-seed (notebook 04).")
    elif chosen == "manual":
        notes.append("Not fixed by this notebook: see the options table.")
    if chosen in ("restart", "skip", "repair", "purged"):
        acts += restart_acts(rb, problem)
    plan = Plan(problem.step_id, f"fix channel {problem.channel} ({problem.direction})",
                tuple(a.step for a in acts), "\n".join(notes))
    return Fix(plan, tuple(acts), functools.partial(_replan, rb, problem, fix), rb)


def _replan(rb: Session, problem: Problem, fix: str) -> Fix:
    return plan_fix(rb, diagnose(rb).get(problem.channel), fix)


def plan_fixes(rb: Session, diagnosis: Diagnosis, *, fix: str = "auto", channel: str = "") -> list[Fix]:
    """One plan per failing channel (only *channel* when given: 'aurora' or 'source')."""
    if channel and channel not in CHANNELS:
        raise ParameterError("channel", f"{channel!r} is not a channel: use 'aurora', 'source' or ''")
    return [plan_fix(rb, p, fix) for p in diagnosis.failing if not channel or p.channel == channel]


def apply_all(rb: Session, fixes: Iterable[Fix]) -> list[Outcome]:
    """``rb.gate.apply`` for each plan, in order."""
    outcomes = [rb.gate.apply(f.plan, f.apply) for f in fixes]
    if not outcomes:
        print("No plan: nothing to fix here.")
    return outcomes


def require_fixed(rb: Session, diagnosis: Diagnosis, *, settle: float = 10.0) -> dict:
    """Both channels, side by side; NotApplied for a channel that failed and still fails (its fix was not
    approved or not applied), ReplicationError as :func:`runbook_lib.checks.channels.require_running`."""
    statuses = directions(rb, settle=settle)
    show_table(side_by_side(statuses))
    unchanged = [p for p in diagnosis.failing if _still(p, statuses[p.direction])]
    if unchanged:
        p = unchanged[0]
        raise NotApplied(f"a running channel {p.channel} ({p.direction})", p.step_id,
                         hint=f"approve {', '.join(repr(x.step_id) for x in unchanged)} (approve=[...] or the "
                              "Apply button above) after reading the plan")
    result = require_running(rb, statuses)
    print("PASS: both replication channels run")
    return result


def _still(problem: Problem, status: Any) -> bool:
    """Pure: the channel is in the very state the diagnosis found (same kind, same failing GTID)."""
    kind, _, error = classify(status)
    return kind == problem.kind and parse_error(error).gtid.lower() == problem.gtid.lower()


# --- 2. which rows differ -------------------------------------------------------------------------

def affected_tables(diagnosis: Diagnosis, fix: str, tables: Sequence[str] = ()) -> tuple[str, ...]:
    """Tables to compare: *tables* if given, else those the failed transactions changed; () means every
    application schema (a purged-binlogs fix, or a failed transaction whose tables are unknown)."""
    if tables:
        return tuple(tables)
    found: list[str] = []
    for p in diagnosis.failing:
        kind = choose(p, fix)
        if kind == "purged" or (kind in ("skip", "repair") and not p.tables):
            return ()
        if kind in ("skip", "repair"):
            found += p.tables
    return tuple(dict.fromkeys(found))


def compare_affected(rb: Session, diagnosis: Diagnosis, *, fix: str = "auto", tables: Sequence[str] = (),
                     wait_timeout: float = 60.0) -> Comparison | None:
    """Compare the affected tables (both channels must run); None when nothing needs comparing."""
    names = affected_tables(diagnosis, fix, tables)
    needed = bool(tables) or any(choose(p, fix) in ("skip", "repair", "purged") for p in diagnosis.failing)
    if not needed:
        print("No table to compare: no row was at stake (give tables=[...] to compare some anyway).")
        return None
    schemas = tuple(dict.fromkeys([*rb.params.app_schemas, *(t.split(".")[0] for t in names)]))
    result = consistency.compare(rb.source(), rb.aurora(), schemas, tables=names, wait_timeout=wait_timeout)
    show_table(result.to_frame())
    print(result.verdict_line())
    return result


# --- 3. make the rows equal -----------------------------------------------------------------------

def right_side(diagnosis: Diagnosis, table: str, keep: str, fix: str) -> str:
    """Pure: whose version of *table*'s rows is kept: *keep* if 'source'/'aurora'; for 'writer', the side
    the failed transaction came from ('source' when both channels failed on the table); '' if unknown."""
    if keep not in KEEPS:
        raise ParameterError("keep", f"{keep!r} is not one of {', '.join(KEEPS)}")
    if keep != "writer":
        return keep
    writers = {p.writer for p in diagnosis.failing if choose(p, fix) == "purged"
               or (choose(p, fix) == "repair" and (table in p.tables or not p.tables))}
    return "source" if len(writers) > 1 else next(iter(writers), "")


def plan_row_repairs(rb: Session, diagnosis: Diagnosis, comparison: Comparison | None, *, fix: str = "auto",
                     keep: str = "writer", max_rows: int = 1000, wait_timeout: float = 60.0) -> list[Fix]:
    """Plans that make differing rows equal (step ``fix:<side whose rows change>``); see the module doc."""
    if keep not in KEEPS:
        raise ParameterError("keep", f"{keep!r} is not one of {', '.join(KEEPS)}")
    if comparison is None or comparison.ok:
        print("No row differs: nothing to repair." if comparison else "Nothing was compared.")
        return []
    if fix in ("skip", "restart"):
        print(f"fix={fix!r}: rows are not repaired here; the verification below shows what differs.")
        return []
    src, aur = rb.source(), rb.aurora()
    aurora_quiet = keeps_out_of_binlog(aur)      # Aurora's rows can then be changed there, unlogged
    shapes = consistency.read_shapes(src, comparison.schemas)
    per_side: dict[str, list[tuple[str, list[Sql], list[Sql] | None, int]]] = {"source": [], "aurora": []}
    for result in comparison.tables:
        if result.verdict != DIFFER:
            continue
        right = right_side(diagnosis, result.table, keep, fix)
        if not right:
            print(f"{result.table}: not repaired: no failed transaction says whose rows are right "
                  "(set keep='source' or keep='aurora')")
            continue
        shape = shapes[result.table][0]
        rows_s, rows_a = differing_rows(src, aur, shape, result)
        if len(rows_s) + len(rows_a) > max_rows:
            raise CheckFailed("row repair", [result.table], hint=f"{len(rows_s) + len(rows_a)} rows differ, more "
                              f"than max_rows={max_rows}: re-seed Aurora (notebooks 04, 05) or raise max_rows")
        wrong = "aurora" if right == "source" else "source"
        if wrong == "source":
            per_side["source"].append((result.table, row_statements(shape, rows_s, rows_a), [], len(rows_a)))
        elif aurora_quiet:
            per_side["aurora"].append((result.table, row_statements(shape, rows_a, rows_s), None, len(rows_s)))
        else:
            per_side["aurora"].append((result.table, row_statements(shape, rows_s, rows_a),
                                       row_statements(shape, rows_a, rows_s), len(rows_s)))
    return [_repair_fix(rb, side, items, keep, wait_timeout, functools.partial(
        plan_row_repairs, rb, diagnosis, comparison, fix=fix, keep=keep, max_rows=max_rows,
        wait_timeout=wait_timeout)) for side, items in per_side.items() if items]


def _repair_fix(rb: Session, wrong: str, items: list, keep: str, wait_timeout: float,
                replan: Callable[[], list[Fix]]) -> Fix:
    right = "aurora" if wrong == "source" else "source"
    acts: list[_Act] = []
    for table, first, second, n in items:
        if wrong == "source":
            acts.append(_act("source", first, f"{table}: make {n} row(s) Aurora's version, not binary-logged",
                             kind="unlogged"))
        elif second is None:            # Aurora keeps this session's statements out of its binary log
            acts.append(_act("aurora", first, f"{table}: make {n} row(s) the source's version, not "
                             "binary-logged", kind="unlogged"))
        else:
            acts += [_act("source", first, f"{table}: put Aurora's current rows in place on the source, not "
                          "binary-logged", kind="unlogged"),
                     _act("source", second, f"{table}: write the source's {n} row(s) back, binary-logged: "
                          "replicates to Aurora", kind="logged_tx")]
    direct = all(second is None for _, _, second, _ in items) and wrong == "aurora"
    notes = (f"Kept: {right}'s version ({'keep=' + keep}). " + (
        "The source is changed with sql_log_bin=0: nothing replicates to Aurora." if wrong == "source" else
        "Aurora is changed directly, its binary logging off for this session (Aurora 2.12+: "
        "rds_disable_session_binlog; Aurora 3: an account with SESSION_VARIABLES_ADMIN): nothing replicates "
        "to the source." if direct else
        "Aurora is not written directly (its writes replicate and could stop the source's channel): the source "
        "briefly holds Aurora's rows, then writes its own back logged; those row events make Aurora's rows the "
        "source's.") + " Triggers fire on the source for its INSERTs; applications should leave these rows "
        "alone meanwhile.")
    plan = Plan(f"fix:{wrong}", f"repair rows on {wrong}", tuple(a.step for a in acts), notes)

    def fresh() -> Fix:
        return next((f for f in replan() if f.plan.step_id == plan.step_id), Fix(Plan(plan.step_id, plan.title)))
    return Fix(plan, tuple(acts), fresh, rb, wait_timeout if wrong == "aurora" and not direct else 0.0)


# --- 4. verification ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Verification:
    running: bool
    comparison: Comparison | None

    @property
    def ok(self) -> bool:
        return self.running and (self.comparison is None or self.comparison.ok)

    def verdict_line(self) -> str:
        data = ("no table compared" if self.comparison is None else
                "data agree" if self.comparison.ok else f"tables differ: {', '.join(self.comparison.tables_differ)}")
        return f"{'PASS' if self.ok else 'FAIL'}: both channels run; {data}"


def verify(rb: Session, diagnosis: Diagnosis, *, fix: str = "auto", tables: Sequence[str] = (),
           settle: float = 10.0, wait_timeout: float = 60.0) -> Verification:
    """Both channels run (ReplicationError otherwise) and the affected tables agree (CheckFailed otherwise)."""
    require_running(rb, directions(rb, settle=settle))
    src, aur = rb.source(), rb.aurora()
    for writer, reader in ((src, aur), (aur, src)):
        waited = wait_until_caught_up(reader, executed_gtids(writer), wait_timeout)
        print(f"{reader.role} has every transaction of {writer.role} (waited {waited:.1f} s)")
    comparison = compare_affected(rb, diagnosis, fix=fix, tables=tables, wait_timeout=wait_timeout)
    result = Verification(True, comparison)
    print(result.verdict_line())
    if comparison is not None:
        comparison.raise_if_differ()
    return result


def figures(diagnosis: Diagnosis, outcomes: Iterable[Outcome], verification: Verification) -> dict:
    """For ``report.record('troubleshooting', ...)``."""
    return {"channels": diagnosis.figures(), "steps": [f"{o.step_id}: {o.status}" for o in outcomes],
            "verdict": "pass" if verification.ok else "fail",
            "tables_differ": verification.comparison.tables_differ if verification.comparison else []}

