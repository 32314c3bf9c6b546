"""Phase 8, the switch under a timeout, all or nothing; a dry run; the record of every switch.

Modelled on AWS Blue/Green Deployments' switchover ("Switching a blue/green deployment in Amazon
RDS": a switchover timeout, and if the switchover does not finish within it, every change is rolled
back and neither environment is changed) and Vitess' SwitchTraffic (``--timeout``, ``--dry_run``).

* :func:`run` (step ``cutover:<scope>`` / ``fallback:<scope>``): the plan of
  :func:`runbook_lib.phases.cutover.steps.plan_switch` through the approval gate; applied by
  :func:`apply_guarded`, which runs its actions against a deadline (each account statement under a
  session ``lock_wait_timeout`` of the time left, each wait for replication only as long as is left).
  When a statement fails or the time runs out, :func:`restore` puts every account back the way it was
  on both sides, then :class:`~runbook_lib.core.errors.SwitchRolledBack` says what failed, what was
  undone and where the scope is served (or :class:`~runbook_lib.core.errors.RollbackIncomplete`
  what is still out of place).  With ``dry_run`` the plan is shown and nothing runs, approved or not.
* Every switch, dry runs and rollbacks included, is kept for the run's ``summary.json`` (section
  ``switches``): who approved it, when, the guardrails, the write pause, the outcome.

Restoring follows the switch's own rule (see :mod:`runbook_lib.phases.cutover.steps`): a side that cannot
keep its statements out of the binary log (Aurora) is restored first, its statements replicate, the
other side waits for them, then that side's own statements, unlogged, set its final state.  Ended
sessions cannot be restored: the application reconnects where its accounts are open.  An account
the switch created (missing on a side before) is left there, locked.
"""
from __future__ import annotations

import getpass
import math
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from runbook_lib.checks import channels
from runbook_lib.core import record as run_record
from runbook_lib.core.approval import Outcome
from runbook_lib.core.display import checks_frame, show_table, styled
from runbook_lib.core.errors import (
    NotCaughtUp,
    PlanStale,
    QueryFailed,
    RollbackIncomplete,
    RunbookError,
    SwitchRolledBack,
)
from runbook_lib.mysql.connection import keeps_out_of_binlog
from runbook_lib.mysql.sql import Sql
from runbook_lib.phases.cutover.checks import (
    SIDES,
    Account,
    Checks,
    Move,
    lock_states,
    scope_sessions,
    state_rows,
)
from runbook_lib.phases.cutover.steps import (
    ER_NO_SUCH_THREAD,
    OTHER,
    Action,
    Switch,
    account_copy,
    plan_switch,
    run_statements,
)
from runbook_lib.phases.cutover.steps import verify as steps_verify

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

SECTION = "switches"


class TimeUp(RunbookError):
    """The switch's deadline passed before an action could start."""


def _statements(server: Server, statements: Sequence[Sql], logged: bool, seconds_left: float) -> None:
    """Run ``statements`` with a session lock_wait_timeout of the time left (a blocked ALTER USER fails
    with error 1205 instead of outliving the switch); unless ``logged``, with binary logging off."""
    previous = server.scalar("SELECT @@SESSION.lock_wait_timeout")
    server.execute(Sql("SET SESSION lock_wait_timeout = %s", (max(1, math.ceil(seconds_left)),)))
    try:
        run_statements(server, statements, logged)
    finally:
        server.execute(Sql("SET SESSION lock_wait_timeout = %s", (int(previous),)))


def _act(rb: Session, move: Move, act: Action, seconds_left: float) -> str:
    """One action of the switch within ``seconds_left``; what it did, for the record."""
    server = channels.server(rb, act.role)
    if act.kind == "wait":
        waited = channels.wait_until_caught_up(server, channels.executed_gtids(channels.server(rb, act.wait_for)),
                                               seconds_left, poll=min(5.0, max(0.5, seconds_left)))
        return f"{act.role} executed {act.wait_for}'s statements ({waited:.1f} s)"
    if act.kind == "kill":
        ended = []
        for s in scope_sessions(server, move):
            if s.by_account:
                try:
                    server.execute(server.dialect.kill_connection(s.id))
                    ended.append(str(s.id))
                except QueryFailed as e:
                    if e.errno != ER_NO_SUCH_THREAD:       # it ended by itself meanwhile
                        raise
        return f"ended sessions on {act.role}: {', '.join(ended) or 'none'}"
    if act.kind == "create":
        having = channels.server(rb, act.wait_for)
        _statements(server, [q for a in act.accounts for q in account_copy(having, a)[0]], act.logged, seconds_left)
        return f"created {', '.join(map(str, act.accounts))} on {act.role} (locked)"
    _statements(server, [a.statement(act.kind == "lock") for a in act.accounts], act.logged, seconds_left)
    return f"{act.kind}ed {', '.join(map(str, act.accounts))} on {act.role}"


def restore(rb: Session, move: Move, before: Mapping[str, Mapping[Account, bool | None]],
            timeout: float) -> tuple[list[str], list[str]]:
    """Put each account back as ``before`` says on both sides (an account that was missing: locked).
    Returns (what was done, what is still out of place)."""
    srv = {r: channels.server(rb, r) for r in SIDES}
    quiet = {r: keeps_out_of_binlog(s) for r, s in srv.items()}
    want = {r: {a: True if before[r][a] is None else before[r][a] for a in move.accounts} for r in SIDES}
    done: list[str] = []
    for r in sorted(SIDES, key=lambda r: quiet[r]):        # sides whose statements replicate first
        now = lock_states(srv[r], move.accounts)
        wrong = [a for a in move.accounts if now[a] is not None and now[a] != want[r][a]]
        if not wrong:
            continue
        _statements(srv[r], [a.statement(want[r][a]) for a in wrong], not quiet[r], timeout)
        done += [f"{'locked' if want[r][a] else 'unlocked'} {a} on {r}" + ("" if quiet[r] else " (replicates)")
                 for a in wrong]
        if not quiet[r]:
            other = OTHER[r]
            channels.wait_until_caught_up(srv[other], channels.executed_gtids(srv[r]), timeout)
            done.append(f"{other} executed {r}'s statements")
    final = {r: lock_states(srv[r], move.accounts) for r in SIDES}
    text = {None: "missing", True: "locked", False: "open"}
    left = [f"{a} is {text[final[r][a]]} on {r} (was {text[before[r][a]]})" for r in SIDES for a in move.accounts
            if final[r][a] is not None and final[r][a] != want[r][a]]
    return done, left


def served_on(move: Move, states: Mapping[str, Mapping[Account, bool | None]]) -> str:
    """Pure: where the scope's accounts are open ('source', 'aurora', 'both sides', 'neither side')."""
    open_on = [r for r in SIDES if move.accounts and all(states[r][a] is False for a in move.accounts)]
    return open_on[0] if len(open_on) == 1 else "both sides" if open_on else "neither side"


def _record(rb: Session, move: Move, checks: Checks | None, outcome: str, started: datetime, pause: float | None,
            done: Sequence[str] = (), undone: Sequence[str] = (), cause: str = "") -> dict:
    why, user = rb.gate.approvals.why(move.step_id), getpass.getuser()
    if outcome in ("switched", "rolled back", "rollback incomplete"):        # it ran: approved one way or other
        approved_by = f"{why} (run by {user})" if why else f"Apply button (clicked by {user})"
    else:
        approved_by = why or "not approved"
    figures = {"step": move.step_id, "scope": move.scope, "direction": move.direction, "from": move.leaving,
               "to": move.going, "approved_by": approved_by,
               "at": started.isoformat(timespec="seconds"), "outcome": outcome,
               "write_pause_s": None if pause is None else round(pause, 3),
               "guardrails": {r.item: r.status for r in checks.results} if checks else {},
               **(checks.gate_figures() if checks else {}),
               "done": list(done), "undone": list(undone), "cause": cause}
    run_record.append(SECTION, figures)
    return figures


def apply_guarded(rb: Session, switch: Switch, checks: Checks | None = None, *,
                  rollback_timeout: float = 60.0) -> Any:
    """Run the switch's actions before its deadline (``switch.timeout`` s); on any failure or when the
    time runs out, :func:`restore` and raise SwitchRolledBack / RollbackIncomplete.  Recorded either way."""
    move, started = switch.move, datetime.now(timezone.utc)
    fresh = plan_switch(rb, move, timeout=switch.timeout)
    changes = [(a.role, a.kind, a.accounts) for a in switch.actions if a.kind in ("create", "lock", "unlock")]
    if [(a.role, a.kind, a.accounts) for a in fresh.actions if a.kind in ("create", "lock", "unlock")] != changes:
        raise PlanStale(f"the accounts of scope {move.scope!r} changed since the plan was shown",
                        hint="run the plan cell again and review the new plan")
    before = {r: lock_states(channels.server(rb, r), move.accounts) for r in SIDES}
    t0 = time.monotonic()
    deadline, done = t0 + switch.timeout, []
    try:
        for act in switch.actions:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeUp(f"the switch's {switch.timeout:g} s ran out before: {act.kind} on {act.role}")
            done.append(_act(rb, move, act, left))
    except (RunbookError, OSError) as e:
        failed_at = next((a for a in switch.actions[len(done):]), None)
        timed_out = isinstance(e, (TimeUp, NotCaughtUp)) or (isinstance(e, QueryFailed) and e.errno == 1205)
        what = e.message if isinstance(e, RunbookError) else str(e)
        cause = (f"{'timed out' if timed_out else 'failed'} at '{failed_at.kind} on {failed_at.role}' after "
                 f"{time.monotonic() - t0:.1f} s of {switch.timeout:g} s: {what}" if failed_at else what)
        print(f"SWITCH FAILED: {cause}\nDone before it: {'; '.join(done) or 'nothing'}\nRolling back...")
        try:
            undone, left = restore(rb, move, before, rollback_timeout)
        except RunbookError as again:
            _record(rb, move, checks, "rollback incomplete", started, time.monotonic() - t0, done, [], cause)
            raise RollbackIncomplete(move.step_id, cause, [], [f"the rollback itself failed: {again}"]) from e
        pause = time.monotonic() - t0
        show_table(checks_frame(state_rows(rb, move, check=False)))
        if left:
            _record(rb, move, checks, "rollback incomplete", started, pause, done, undone, cause)
            raise RollbackIncomplete(move.step_id, cause, undone, left) from e
        where = served_on(move, before)
        _record(rb, move, checks, "rolled back", started, pause, done, undone, cause)
        raise SwitchRolledBack(move.step_id, cause, undone, where,
                               hint=f"the scope's application stays on {where}; fix the cause, then run this "
                                    "notebook again") from e
    pause = time.monotonic() - t0
    _record(rb, move, checks, "switched", started, pause, done)
    print(f"switch done in {pause:.2f} s (the scope's write pause): {'; '.join(done)}")
    return styled(checks_frame(state_rows(rb, move, check=True)))


def run(rb: Session, switch: Switch, checks: Checks | None = None, *, dry_run: bool = False,
        rollback_timeout: float = 60.0) -> Outcome:
    """The switch through the approval gate, guarded; with ``dry_run``, shown only (nothing runs)."""
    plan = switch.plan
    if dry_run:
        print(f"PLAN {plan.step_id}: {plan.title}")
        show_table(plan.to_frame())
        if plan.notes:
            print(plan.notes)
        verdict = "would pass" if checks is None or checks.ok else "would STOP the switch"
        print(f"DRY RUN: nothing was changed. The guardrails above {verdict}; the switch would run "
              f"{len(plan.steps)} change(s) within {switch.timeout:g} s and be rolled back if it failed or ran out "
              "of time. Set dry_run = False (and approve the step) to switch.")
        _record(rb, switch.move, checks, "dry run", datetime.now(timezone.utc), None)
        return Outcome("dry run", plan.step_id)
    return rb.gate.apply(plan, lambda: apply_guarded(rb, switch, checks, rollback_timeout=rollback_timeout))


def require(rb: Session, checks: Checks, *, dry_run: bool = False) -> None:
    """Stop before the switch when a guardrail failed (recorded); a dry run only says it would stop."""
    if checks.ok:
        return
    failed = [r.item for r in checks.results if r.status == "fail"]
    if dry_run:
        print(f"DRY RUN: the switch would STOP here: {len(failed)} guardrail(s) failed: {', '.join(failed)}")
        return
    _record(rb, checks.move, checks, "guardrails failed", datetime.now(timezone.utc), None, cause=", ".join(failed))
    checks.require()


def verify(rb: Session, move: Move, checks: Checks, outcome: Outcome) -> str:
    """After a dry run: nothing to verify ('' returned); otherwise :func:`runbook_lib.phases.cutover.steps.verify`."""
    if outcome.status == "dry run":
        print(f"DRY RUN: nothing was switched; the scope {move.scope} stays where it is.")
        show_table(checks_frame(state_rows(rb, move, check=False)))
        return ""
    return steps_verify(rb, move, checks)
