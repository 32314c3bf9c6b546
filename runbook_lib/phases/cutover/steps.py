"""Phase 8: move one application, schema or tenant (a *scope* of the parameters) to Aurora
(``cutover``) or back to the source (``fallback``) while everything else keeps replicating.

* :func:`prepare` -> :class:`Move`: the scope's schemas and accounts, the side it leaves, the side
  it goes to, and where its accounts stand now.
* :func:`check_before` -> :class:`Checks` (reads only): no session and no write of the scope on the
  side it leaves during a short window (processlist; performance_schema write counters sampled at
  both ends; the binary log's GTID origins), replication running and caught up both ways (GTID
  sets), the scope's tables identical (re-verified since the last recorded pass, phase 6's:
  :mod:`runbook_lib.checks.consistency.changes`).  A failure stops the phase.
  It lives in :mod:`runbook_lib.phases.cutover.checks` with :class:`Move`, :class:`Account`, :func:`move_for`
  and :func:`record`; import them from there (one import path per name).
* :func:`plan_switch` -> :class:`Switch` (step ``cutover:<scope>`` / ``fallback:<scope>``): the
  accounts locked on the side it leaves (their sessions killed) and unlocked on the side it goes to.
* :func:`verify`: the lock state read on both servers, then the endpoint the application must use.

Account statements are binary-logged and replicate: a replicated ``ACCOUNT LOCK`` would lock the
scope out of BOTH sides.  The source's administrator keeps its statement on the source with
``SET SESSION sql_log_bin = 0``.  Aurora offers it by version (:attr:`Dialect.session_binlog_way`,
probed by :func:`runbook_lib.mysql.connection.keeps_out_of_binlog`): Aurora 2.12+ through
``mysql.rds_disable_session_binlog``; Aurora 3 only to an account holding SESSION_VARIABLES_ADMIN,
which its master user does not; older Aurora 2 not at all.  A side that cannot has its
binary-logged statement run FIRST, the switch waits until the other
side has executed it, and then the other side's own statement runs unlogged: the last statement is
the final word on both sides and nothing still in flight can undo it.  In a cut-over to Aurora that
leaves the accounts open on both sides for the moment between Aurora's unlock and the source's lock
(as they were before the first cut-over; the checks found the application stopped); in a fallback
from Aurora they are locked on both sides for a moment.  When both sides can keep their statements
to themselves, the side being left is locked first.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbook_lib.checks import channels, splitbrain
from runbook_lib.core.approval import Plan, Step
from runbook_lib.core.display import CheckResult, checks_frame, show_table, styled, verdict
from runbook_lib.core.errors import (
    CheckFailed,
    NotApplied,
    NotCaughtUp,
    PlanStale,
    PrivilegeMissing,
    QueryFailed,
    ReplicationError,
)
from runbook_lib.core.redact import Redactor
from runbook_lib.mysql.connection import keeps_out_of_binlog
from runbook_lib.mysql.sql import Sql
from runbook_lib.phases.cutover.checks import (
    SIDES,
    Account,
    Checks,
    Move,
    ScopeSession,
    lock_states,
    move_for,
    record,
    scope_sessions,
    state_rows,
)

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

OTHER = {"source": "aurora", "aurora": "source"}
ER_NO_SUCH_THREAD = 1094


def prepare(rb: Session, scope: str, direction: str) -> Move:
    """:func:`move_for`, then where the scope's accounts stand now on both sides."""
    move = move_for(rb.params, scope, direction)
    print(move.describe())
    show_table(checks_frame(state_rows(rb, move, check=False)))
    return move


# --- the switch ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    """One part of the switch, on one side.  ``logged``: its statements replicate to the other side."""

    role: str
    kind: str                                  # create | lock | unlock | kill | wait
    accounts: tuple[Account, ...] = ()
    logged: bool = False
    wait_for: str = ""                         # wait: until this side's transactions are executed here;
                                               # create: the side the account is copied from


def switch_actions(move: Move, states: Mapping[str, Mapping[Account, bool | None]],
                   quiet: Mapping[str, bool], sessions: int = 0) -> tuple[Action, ...]:
    """Pure: the switch in the order that leaves each side as intended (see the module doc)."""
    leaving, going = move.leaving, move.going
    create = [Action(r, "create", tuple(sorted(a for a in move.accounts if states[r][a] is None)),
                     not quiet[r], wait_for=OTHER[r])
              for r in SIDES if any(states[r][a] is None for a in move.accounts)]
    states = {r: {a: True if states[r][a] is None else states[r][a] for a in move.accounts} for r in SIDES}
    lock = {a for a in move.accounts if states[leaving][a] is False}
    unlock = {a for a in move.accounts if states[going][a] is True}
    if lock and not quiet[leaving]:
        unlock |= lock          # the replicated lock closes them on the side they go to: open them again
    if unlock and not quiet[going]:
        lock |= unlock          # the replicated unlock opens them on the side they leave: close them again
    kill = [Action(leaving, "kill", move.accounts)]
    if not lock and not unlock:
        return tuple(create + kill) if sessions else tuple(create)
    locks = ([Action(leaving, "lock", tuple(sorted(lock)), not quiet[leaving])] if lock else []) + kill
    unlocks = [Action(going, "unlock", tuple(sorted(unlock)), not quiet[going])] if unlock else []
    if unlocks and unlocks[0].logged:
        return tuple(create + unlocks + [Action(leaving, "wait", wait_for=going)] + locks)
    if lock and locks[0].logged and unlocks:
        return tuple(create + locks + [Action(going, "wait", wait_for=leaving)] + unlocks)
    return tuple(create + locks + unlocks)


def account_copy(server: Server, account: Account) -> tuple[list[Sql], str]:
    """Statements that create ``account`` elsewhere as it is on ``server`` (password hash, grants), locked;
    and how to show them (without the hash, which is also masked in any output of this process)."""
    row = server.query_one("SELECT plugin AS p, HEX(authentication_string) AS h FROM mysql.user "
                           "WHERE User = %s AND Host = %s", (account.user, account.host))
    if row is None or not re.fullmatch(r"\w+", str(row["p"])):
        raise CheckFailed(f"copying account {account}", [f"account {account} on {server.role}"],
                          hint="the account must exist with a known authentication plugin on one side")
    plugin, hashed = str(row["p"]), str(row["h"] or "")
    if hashed:
        Redactor.default().register(f"0x{hashed}", f"password hash of {account}")
    grants = [str(next(iter(r.values())))
              for r in server.query("SHOW GRANTS FOR %s@%s", (account.user, account.host))]
    create = Sql(f"CREATE USER IF NOT EXISTS %s@%s IDENTIFIED WITH {plugin}"
                 f"{f' AS 0x{hashed}' if hashed else ''} ACCOUNT LOCK", (account.user, account.host))
    hidden = f" AS (its password hash on {server.role})" if hashed else ""
    shown = f"CREATE USER IF NOT EXISTS {account.quoted} IDENTIFIED WITH {plugin}{hidden} ACCOUNT LOCK; "
    shown += "; ".join(grants)
    return [create, *(Sql(g) for g in grants)], shown


def _steps(act: Action, where: str, sessions: Sequence[ScopeSession], timeout: float,
           copies: Mapping[Account, str], off_on: tuple[str, str] = ("", "")) -> list[Step]:
    if act.kind == "wait":
        return [Step(where, f"wait until {act.role} has executed {act.wait_for}'s statements",
                     f"WAIT_FOR_EXECUTED_GTID_SET({act.wait_for}'s gtid_executed, up to {timeout:g} s)",
                     True)]
    if act.kind == "kill":
        ids = ", ".join(str(s.id) for s in sessions if s.by_account) or "none now"
        return [Step(where, "end the sessions of the scope's accounts", f"KILL CONNECTION (id) for each "
                     f"session of {', '.join(map(str, act.accounts))} ({ids})", False,
                     "the application reconnects to the side it is configured for")]
    out = []
    for a in act.accounts:
        if act.kind == "create":
            sql, what, undo = copies[a], f"create {a} as on {act.wait_for}", f"DROP USER {a.quoted}"
        else:
            sql, what = str(a.statement(act.kind == "lock")), f"{act.kind} {a}"
            undo = str(a.statement(act.kind != "lock"))
        detail = (f"{sql}  -- binary-logged: replicates to {OTHER[act.role]}" if act.logged
                  else f"{off_on[0]}; {sql}; {off_on[1]}")
        out.append(Step(where, what, detail, True, undo))
    return out


@dataclass(frozen=True)
class Switch:
    """The planned switch: ``plan`` to show and approve, ``apply`` to hand to the gate."""

    move: Move
    plan: Plan
    actions: tuple[Action, ...]
    timeout: float
    rb: Any = field(repr=False, compare=False, default=None)

    def apply(self) -> Any:
        """Run the actions (after checking nothing changed since the plan); return the new states."""
        def changes(actions: Sequence[Action]) -> list[Action]:
            return [a for a in actions if a.kind in ("create", "lock", "unlock")]
        if changes(plan_switch(self.rb, self.move, timeout=self.timeout).actions) != changes(self.actions):
            raise PlanStale(f"the accounts of scope {self.move.scope!r} changed since the plan was shown",
                            hint="run the plan cell again and review the new plan")
        for act in self.actions:
            server = channels.server(self.rb, act.role)
            if act.kind == "wait":
                _wait(self.rb, self.move, act, self.timeout)
            elif act.kind == "kill":
                for s in scope_sessions(server, self.move):
                    if s.by_account:
                        _kill(server, s.id)
            elif act.kind == "create":
                having = channels.server(self.rb, act.wait_for)
                run_statements(server, [q for a in act.accounts for q in account_copy(having, a)[0]], act.logged)
            else:
                run_statements(server, [a.statement(act.kind == "lock") for a in act.accounts], act.logged)
        return styled(checks_frame(state_rows(self.rb, self.move, check=True)))


def run_statements(server: Server, statements: Sequence[Sql], logged: bool) -> None:
    """Run ``statements``; unless ``logged``, with this session's binary logging off meanwhile."""
    if not logged:
        server.execute(server.dialect.session_binlog(False))
    try:
        for statement in statements:
            server.execute(statement)
    finally:
        if not logged:
            server.execute(server.dialect.session_binlog(True))


def _wait(rb: Session, move: Move, act: Action, timeout: float) -> None:
    sent = channels.executed_gtids(channels.server(rb, act.wait_for))
    try:
        channels.wait_until_caught_up(channels.server(rb, act.role), sent, timeout)
    except NotCaughtUp as e:
        now = "; ".join(f"{r.item}: source {r.source}, aurora {r.aurora}"
                        for r in state_rows(rb, move, check=False))
        raise ReplicationError(act.role, f"{act.wait_for}'s account statement did not arrive within "
                               f"{timeout:g} s; the switch stopped half-way ({now})",
                               hint="fix replication (its status says why), then run this notebook again: "
                                    "the new plan finishes the switch") from e


def _kill(server: Server, thread_id: int) -> None:
    try:
        server.execute(server.dialect.kill_connection(thread_id))
    except QueryFailed as e:
        if e.errno != ER_NO_SUCH_THREAD:       # it ended by itself meanwhile
            raise


def plan_switch(rb: Session, move: Move, *, timeout: float = 60.0) -> Switch:
    """The accounts' changes on both sides, ordered so that neither side's statement can undo the
    other's; an empty plan when the scope is already where it should be."""
    srv = {r: channels.server(rb, r) for r in SIDES}
    states = {r: lock_states(s, move.accounts) for r, s in srv.items()}
    nowhere = [f"account {a} exists on neither side" for a in move.accounts
               if states["source"][a] is None and states["aurora"][a] is None]
    if nowhere:
        raise CheckFailed(f"the {move.direction} of {move.scope}", nowhere,
                          hint="create the scope's accounts on the source first")
    sessions = scope_sessions(srv[move.leaving], move)
    quiet = {r: keeps_out_of_binlog(s) for r, s in srv.items()}
    actions = switch_actions(move, states, quiet, sum(s.by_account for s in sessions))
    if not any(quiet.values()) and any(a.logged for a in actions):
        raise PrivilegeMissing("source", srv["source"].endpoint.user, "SYSTEM_VARIABLES_ADMIN or "
                               "SESSION_VARIABLES_ADMIN", "SET SESSION sql_log_bin = 0 (else each account "
                               "change replicates and the scope ends up locked or open on both sides)")
    copies = {a: account_copy(srv[act.wait_for], a)[1] for act in actions if act.kind == "create"
              for a in act.accounts}
    off_on = {r: (str(s.dialect.session_binlog(False)), str(s.dialect.session_binlog(True)))
              for r, s in srv.items() if quiet[r]}
    steps = [step for a in actions
             for step in _steps(a, f"{a.role} {srv[a.role].endpoint.address}", sessions, timeout, copies,
                                off_on.get(a.role, ("", "")))]
    logged = sorted({a.role for a in actions if a.logged})
    notes = (f"{' and '.join(logged)} cannot keep statements out of its binary log: its statement runs first "
             "and replicates; after the wait the other side's unlogged statement sets the final state."
             if logged else "")
    plan = Plan(move.step_id, f"{move.direction} of scope {move.scope}: {move.leaving} -> {move.going}",
                tuple(steps), notes)
    return Switch(move, plan, actions, timeout, rb)


# --- after the switch ------------------------------------------------------------------------

def verify(rb: Session, move: Move, checks: Checks | None = None) -> str:
    """The accounts' lock state read on both servers; NotApplied (recorded) unless the scope is where it
    should be.  Then the endpoint the scope's application must use, which is also returned."""
    rows = state_rows(rb, move, check=True)
    left = [str(s) for s in scope_sessions(channels.server(rb, move.leaving), move) if s.by_account]
    rows.append(CheckResult(f"sessions of the scope's accounts on {move.leaving}",
                            **{move.leaving: len(left)}, status="fail" if left else "pass",
                            advice="; ".join(left)))
    show_table(checks_frame(rows))
    print(verdict(rows, f"scope {move.scope} on {move.going}"))
    if any(r.status == "fail" for r in rows):
        record(move, "not applied", checks=checks)
        raise NotApplied(f"the {move.direction} of scope {move.scope!r} (accounts locked on {move.leaving}, "
                         f"open on {move.going})", move.step_id)
    p = rb.params
    endpoint = (f"{p.aurora_host}:{p.aurora_port}" if move.going == "aurora"
                else f"{p.source_host}:{p.source_port}")
    print(f"ENDPOINT for the {move.scope} application ({', '.join(map(str, move.accounts))}): {endpoint} "
          f"({move.going}). Change the application's configuration to it, then start the application.")
    return endpoint


def summary(move: Move, gate_outcome: Any, checks: Checks, after: splitbrain.SplitBrainReport,
            endpoint: str) -> dict:
    """Record the figures and print one line: what this run did."""
    outcome = {"applied": "switched", "nothing to do": "already in place"}.get(gate_outcome.status,
                                                                             gate_outcome.status)
    figures = record(move, outcome, checks=checks, after=after, endpoint=endpoint)
    kind, seconds = figures["same_data_check_kind"], figures["same_data_check_seconds"]
    print(f"{move.direction.upper()} {move.scope}: {outcome}; endpoint {endpoint}; same-data check: "
          f"{f'{kind} in {seconds:.2f} s' if kind else 'not run'}; tables written from both "
          f"sides before: {', '.join(figures['split_brain_tables']) or 'none'}; since the checks began: "
          f"{', '.join(figures['split_brain_tables_after']) or 'none'}")
    return figures
