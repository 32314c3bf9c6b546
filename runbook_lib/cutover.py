"""Phase 8: move one application, schema or tenant (a *scope* of the parameters) to Aurora
(``cutover``) or back to the source (``fallback``) while everything else keeps replicating.

* :func:`prepare` -> :class:`Move`: the scope's schemas and accounts, the side it leaves, the side
  it goes to, and where its accounts stand now.
* :func:`check_before` -> :class:`Checks` (reads only): no session and no write of the scope on the
  side it leaves during a short window (processlist; performance_schema write counters sampled at
  both ends; the binary log's GTID origins), replication running and caught up both ways (GTID
  sets), the scope's tables identical (:mod:`runbook_lib.consistency`).  A failure stops the phase.
* :func:`plan_switch` -> :class:`Switch` (step ``cutover:<scope>`` / ``fallback:<scope>``): the
  accounts locked on the side it leaves (their sessions killed) and unlocked on the side it goes to.
* :func:`verify`: the lock state read on both servers, then the endpoint the application must use.

Account statements are binary-logged and replicate: a replicated ``ACCOUNT LOCK`` would lock the
scope out of BOTH sides.  The source's administrator keeps its statement on the source with
``SET SESSION sql_log_bin = 0``.  Aurora's master user cannot: that needs SUPER,
SYSTEM_VARIABLES_ADMIN or SESSION_VARIABLES_ADMIN, which Aurora withholds, and no ``mysql.rds_*``
procedure offers it.  So the binary-logged statement runs FIRST, the switch waits until the other
side has executed it, and then the other side's own statement runs unlogged: the last statement is
the final word on both sides and nothing still in flight can undo it.  In a cut-over to Aurora that
leaves the accounts open on both sides for the moment between Aurora's unlock and the source's lock
(as they were before the first cut-over; the checks found the application stopped); in a fallback
from Aurora they are locked on both sides for a moment.  When both sides can keep their statements
to themselves, the side being left is locked first.
"""
from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import consistency, replication, report, splitbrain
from .approval import Plan, Step
from .dialect import Sql
from .display import CheckResult, checks_frame, show_table, styled, verdict
from .errors import (CheckFailed, NotApplied, NotCaughtUp, ParameterError, PlanStale, PrivilegeMissing,
                     QueryFailed, ReplicationError, UnsupportedServer)
from .secrets import Redactor

if TYPE_CHECKING:  # pragma: no cover
    from .connection import Server
    from .session import Session

DIRECTIONS = {"cutover": ("source", "aurora"), "fallback": ("aurora", "source")}
SIDES = ("source", "aurora")
OTHER = {"source": "aurora", "aurora": "source"}
SYSTEM_USERS = ("system user", "event_scheduler")
SYSTEM_COMMANDS = ("Daemon", "Binlog Dump", "Binlog Dump GTID")
ER_NO_SUCH_THREAD = 1094
IDENTICAL = "the scope's tables are identical on both sides"


@dataclass(frozen=True, order=True)
class Account:
    user: str
    host: str

    @classmethod
    def parse(cls, text: str) -> Account:
        user, sep, host = text.rpartition("@")
        if not sep or not user or not host:
            raise ParameterError("scopes", f"{text!r} is not an account (user@host)")
        return cls(user, host)

    def __str__(self) -> str:
        return f"{self.user}@{self.host}"

    @property
    def quoted(self) -> str:
        """``'user'@'host'`` as SQL names the account."""
        return Sql("%s@%s", (self.user, self.host)).shown()

    def statement(self, lock: bool) -> Sql:
        return Sql(f"ALTER USER %s@%s ACCOUNT {'LOCK' if lock else 'UNLOCK'}", (self.user, self.host))

    def matches(self, user: str, client_host: str) -> bool:
        """Whether a session of ``user`` from ``client_host`` (processlist 'ip:port') is this account's."""
        host = re.sub(r":\d+$", "", client_host or "")
        pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in self.host)
        return user == self.user and re.fullmatch(pattern, host, re.IGNORECASE) is not None


@dataclass(frozen=True)
class Move:
    """One scope moving from one side to the other."""

    scope: str
    direction: str
    schemas: tuple[str, ...]
    accounts: tuple[Account, ...]

    @property
    def leaving(self) -> str:
        return DIRECTIONS[self.direction][0]

    @property
    def going(self) -> str:
        return DIRECTIONS[self.direction][1]

    @property
    def step_id(self) -> str:
        return f"{self.direction}:{self.scope}"

    def describe(self) -> str:
        return (f"{self.direction} of scope {self.scope!r}: schemas {', '.join(self.schemas)}; accounts "
                f"{', '.join(map(str, self.accounts)) or '(none)'}; from {self.leaving} to {self.going}")


def move_for(params: Any, scope: str, direction: str) -> Move:
    """The :class:`Move` of a scope of the parameters in a direction; ParameterError otherwise."""
    if direction not in DIRECTIONS:
        raise ParameterError("direction", f"{direction!r} is not one of {', '.join(DIRECTIONS)}",
                             hint="cutover: source -> Aurora; fallback: Aurora -> source")
    spec = params.scopes.get(scope)
    if spec is None:
        raise ParameterError("scope", f"{scope!r} is not a scope of this environment",
                             hint=f"scopes are: {', '.join(sorted(params.scopes)) or '(none defined)'}")
    return Move(scope, direction, tuple(spec.get("schemas", ())),
                tuple(Account.parse(a) for a in spec.get("accounts", ())))


def prepare(rb: Session, scope: str, direction: str) -> Move:
    """:func:`move_for`, then where the scope's accounts stand now on both sides."""
    move = move_for(rb.params, scope, direction)
    print(move.describe())
    show_table(checks_frame(_state_rows(rb, move, check=False)))
    return move


def lock_states(server: Server, accounts: Sequence[Account]) -> dict[Account, bool | None]:
    """``account -> locked?`` on ``server`` (None: the account does not exist there)."""
    if not accounts:
        return {}
    rows = server.query("SELECT User AS u, Host AS h, account_locked AS l FROM mysql.user WHERE (User, Host) "
                        f"IN ({', '.join(['(%s, %s)'] * len(accounts))})",
                        tuple(v for a in accounts for v in (a.user, a.host)))
    found = {Account(str(r["u"]), str(r["h"])): str(r["l"]).upper() == "Y" for r in rows}
    return {a: found.get(a) for a in accounts}


def _state_rows(rb: Session, move: Move, *, check: bool) -> list[CheckResult]:
    """One row per account: 'open' / 'locked' / 'missing' on each side; judged when ``check``."""
    states = {r: lock_states(replication.server(rb, r), move.accounts) for r in SIDES}
    text = {None: "missing", True: "locked", False: "open"}
    rows = []
    for a in move.accounts:
        now = {r: states[r][a] for r in SIDES}
        ok = now[move.leaving] is True and now[move.going] is False
        want = f"expected locked on {move.leaving}, open on {move.going}"
        status, advice = ("pass", "") if ok else ("fail", want)
        missing = [r for r in SIDES if now[r] is None]
        if len(missing) == 2:
            status, advice = "fail", "the account exists on neither side: create it on the source first"
        elif missing and not check:
            status, advice = "warn", (f"missing on {missing[0]} (a restore from S3 carries no users): the "
                                      "switch creates it there as it is on the other side (hash, grants)")
        elif not check:
            status, advice = "info", ""
        rows.append(CheckResult(f"account {a}", text[now["source"]], text[now["aurora"]], status, advice))
    return rows


# --- before the switch -------------------------------------------------------------------------

@dataclass(frozen=True)
class ScopeSession:
    id: int
    user: str
    host: str
    db: str
    by_account: bool          # a session of one of the scope's accounts (else: in one of its schemas)

    def __str__(self) -> str:
        return f"{self.id} {self.user}@{self.host}" + (f" in {self.db}" if self.db else "")


def scope_sessions(server: Server, move: Move) -> list[ScopeSession]:
    """Sessions of the scope's accounts, or with one of its schemas as default database (not ours)."""
    own = server.scalar("SELECT CONNECTION_ID()")
    out = []
    for r in server.query("SHOW FULL PROCESSLIST"):
        user, host, db = str(r["User"] or ""), str(r["Host"] or ""), str(r["db"] or "")
        if r["Id"] == own or user in SYSTEM_USERS or r["Command"] in SYSTEM_COMMANDS:
            continue
        by_account = any(a.matches(user, host) for a in move.accounts)
        if by_account or db in move.schemas:
            out.append(ScopeSession(int(r["Id"]), user, host, db, by_account))
    return out


def write_counts(server: Server, schemas: Sequence[str]) -> dict[str, int] | None:
    """Rows inserted + updated + deleted per table since start (performance_schema); None when it is off."""
    if str(server.scalar("SELECT @@GLOBAL.performance_schema")) in ("0", "OFF"):
        return None
    rows = server.query("SELECT OBJECT_SCHEMA AS s, OBJECT_NAME AS t, COUNT_INSERT + COUNT_UPDATE + "
                        "COUNT_DELETE AS w FROM performance_schema.table_io_waits_summary_by_table WHERE "
                        f"OBJECT_TYPE = 'TABLE' AND OBJECT_SCHEMA IN ({', '.join(['%s'] * len(schemas))})",
                        tuple(schemas))
    return {f"{r['s']}.{r['t']}": int(r["w"]) for r in rows}


def written(before: Mapping[str, int] | None, after: Mapping[str, int] | None) -> dict[str, int] | None:
    """Pure: tables whose counter grew, with the growth (None if either sample is missing)."""
    if before is None or after is None:
        return None
    return {t: n - before.get(t, 0) for t, n in after.items() if n > before.get(t, 0)}


@dataclass(frozen=True)
class Checks:
    """The checks before the switch.  ``marks``: where each binary log stood when they began."""

    move: Move
    results: tuple[CheckResult, ...]
    marks: Mapping[str, splitbrain.BinlogMark] = field(default_factory=dict)
    comparison: consistency.Comparison | None = None
    split_brain: tuple[str, ...] = ()      # tables written from both sides, from the guard before

    @property
    def ok(self) -> bool:
        return all(r.status != "fail" for r in self.results)

    def show(self) -> None:
        show_table(checks_frame(self.results))
        if self.comparison is not None and not self.comparison.ok:
            show_table(self.comparison.to_frame())
        print(verdict(self.results, f"before the {self.move.direction} of {self.move.scope}"))

    def require(self) -> None:
        """CheckFailed (recorded for the run's report) when any check failed; nothing was changed."""
        if not self.ok:
            record(self.move, "checks failed", checks=self)
            raise CheckFailed(f"before the {self.move.direction} of {self.move.scope}",
                              [r.item for r in self.results if r.status == "fail"],
                              table=checks_frame(self.results),
                              hint="nothing was changed; fix each failed row as it says, then run again")


def _sides(item: str, values: Mapping[str, Any], fail: bool, warn: bool, advice: str) -> CheckResult:
    status = "fail" if fail else "warn" if warn else "pass"
    return CheckResult(item, values.get("source", ""), values.get("aurora", ""), status,
                       advice if status != "pass" else "")


def _rows_text(counts: Mapping[str, int] | None) -> str:
    if counts is None:
        return "not measured (performance_schema OFF)"
    detail = ", ".join(f"{t} {n}" for t, n in sorted(counts.items()))
    return f"{sum(counts.values())} rows" + (f" ({detail})" if detail else "")


def check_before(rb: Session, move: Move, *, write_window: float = 5.0, catch_up_timeout: float = 60.0,
                 split_brain: splitbrain.SplitBrainReport | None = None, chunk_rows: int = 10_000) -> Checks:
    """Every check; reads only, about ``write_window`` seconds plus the comparison."""
    srv = {r: replication.server(rb, r) for r in SIDES}
    leaving, going = move.leaving, move.going
    results = [CheckResult(f"replication {d} running", **{replication.REPLICA_ROLE[d]: (
        f"IO {s.io_running}, SQL {s.sql_running}" if s else "no channel")},
        status="pass" if s is not None and s.running else "fail", advice=replication.advice(d, s))
        for d, s in replication.directions(rb, settle=5.0).items()]
    results += _state_rows(rb, move, check=False)
    marks = splitbrain.marks(srv["source"], srv["aurora"])
    first = {r: write_counts(s, move.schemas) for r, s in srv.items()}
    seen = {r: {x.id: x for x in scope_sessions(s, move)} for r, s in srv.items()}
    time.sleep(write_window)
    grew = {r: written(first[r], write_counts(s, move.schemas)) for r, s in srv.items()}
    for r, s in srv.items():
        seen[r].update({x.id: x for x in scope_sessions(s, move)})
    for mine, item in ((True, "sessions of the scope's accounts"),
                       (False, "other sessions in the scope's schemas")):
        found = {r: [str(x) for x in seen[r].values() if x.by_account is mine] for r in SIDES}
        results.append(_sides(item, {r: len(v) for r, v in found.items()}, bool(found[leaving]),
                              bool(found[going]), f"stop the application on {leaving} first: "
                              f"{'; '.join(found[leaving])}" if found[leaving] else
                              f"already connected to {going}: {'; '.join(found[going])}"))
    results.append(_sides(f"row writes to the scope's tables in {write_window:g} s",
                          {r: _rows_text(g) for r, g in grew.items()}, bool(grew[leaving]),
                          bool(grew[going]) or grew[leaving] is None,
                          f"still written on {leaving}: stop the scope's application and jobs first"
                          if grew[leaving] else f"not measured on {leaving}: the binary log row below still "
                          "counts its transactions" if grew[leaving] is None else f"rows changed on {going}: "
                          "replication applying late, or the application already writes there"))
    origin = splitbrain.guard(srv["source"], srv["aurora"], since=marks).writes_by_side(move.schemas)
    results.append(_sides("transactions on the scope's tables in the window (binary log)", origin,
                          origin[leaving] > 0, origin[going] > 0,
                          f"transactions that began on {leaving} changed the scope's tables: stop its "
                          f"application first" if origin[leaving] else
                          f"transactions that began on {going} changed the scope's tables: who writes "
                          "there?"))
    results += _caught_up(srv, catch_up_timeout)
    comparison = None
    if all(r.status != "fail" for r in results):
        comparison = consistency.compare(srv["source"], srv["aurora"], move.schemas, chunk_rows=chunk_rows,
                                         wait_timeout=catch_up_timeout)
        same = comparison.ok and bool(comparison.tables)
        rows = {r: f"{len(comparison.tables)} tables, "
                   f"{sum(getattr(t, f'{r}_rows') or 0 for t in comparison.tables):,} rows" for r in SIDES}
        results.append(CheckResult(IDENTICAL, rows["source"], rows["aurora"], "pass" if same else "fail",
                                   "" if same else comparison.verdict_line()))
    else:
        results.append(CheckResult(IDENTICAL, "not compared", "not compared", "fail",
                                   "compared once the checks above pass"))
    both = tuple(split_brain.both) if split_brain is not None else ()
    if split_brain is not None:
        in_scope = [t for t in both if splitbrain.named(t, move.schemas)]
        results.append(CheckResult("split brain: scope tables written from both sides", ", ".join(in_scope)
                                   or "none", "", "warn" if in_scope else "pass",
                                   "both sides wrote them recently: only one side may write them from now "
                                   "on" if in_scope else ""))
    return Checks(move, tuple(results), marks, comparison, both)


def _caught_up(srv: Mapping[str, Server], timeout: float) -> list[CheckResult]:
    executed = {r: replication.executed_gtids(s) for r, s in srv.items()}
    out = []
    for replica, writer in (("aurora", "source"), ("source", "aurora")):
        try:
            waited = replication.wait_until_caught_up(srv[replica], executed[writer], timeout)
            value, status, advice = f"caught up ({waited:.1f} s)", "pass", ""
        except NotCaughtUp as e:
            value, status, advice = f"missing {e.missing}", "fail", e.hint
        out.append(CheckResult(f"{replica} has executed every transaction of {writer}", **{replica: value},
                               status=status, advice=advice))
    return out


# --- the switch ----------------------------------------------------------------------------------

def keeps_out_of_binlog(server: Server) -> bool:
    """Whether this session may turn its binary logging off (probed: off, then on again)."""
    try:
        off = server.dialect.session_binlog(False)
    except UnsupportedServer:
        return False                                   # Aurora: known without asking
    try:
        server.execute(off)
    except PrivilegeMissing:
        return False
    server.execute(server.dialect.session_binlog(True))
    return True


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
           copies: Mapping[Account, str]) -> list[Step]:
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
                  else f"SET SESSION sql_log_bin = 0; {sql}; SET SESSION sql_log_bin = 1")
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
            server = replication.server(self.rb, act.role)
            if act.kind == "wait":
                _wait(self.rb, self.move, act, self.timeout)
            elif act.kind == "kill":
                for s in scope_sessions(server, self.move):
                    if s.by_account:
                        _kill(server, s.id)
            elif act.kind == "create":
                having = replication.server(self.rb, act.wait_for)
                _run(server, [q for a in act.accounts for q in account_copy(having, a)[0]], act.logged)
            else:
                _run(server, [a.statement(act.kind == "lock") for a in act.accounts], act.logged)
        return styled(checks_frame(_state_rows(self.rb, self.move, check=True)))


def _run(server: Server, statements: Sequence[Sql], logged: bool) -> None:
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
    sent = replication.executed_gtids(replication.server(rb, act.wait_for))
    try:
        replication.wait_until_caught_up(replication.server(rb, act.role), sent, timeout)
    except NotCaughtUp as e:
        now = "; ".join(f"{r.item}: source {r.source}, aurora {r.aurora}"
                        for r in _state_rows(rb, move, check=False))
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
    srv = {r: replication.server(rb, r) for r in SIDES}
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
    steps = [step for a in actions
             for step in _steps(a, f"{a.role} {srv[a.role].endpoint.address}", sessions, timeout, copies)]
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
    rows = _state_rows(rb, move, check=True)
    left = [str(s) for s in scope_sessions(replication.server(rb, move.leaving), move) if s.by_account]
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


def record(move: Move, outcome: str, *, checks: Checks | None = None,
           after: splitbrain.SplitBrainReport | None = None, endpoint: str = "") -> dict:
    """Figures for the run's report (section 'cutover'); returned as well."""
    figures = {"scope": move.scope, "direction": move.direction, "from": move.leaving, "to": move.going,
               "schemas": list(move.schemas), "accounts": [str(a) for a in move.accounts], "verdict": outcome,
               "endpoint": endpoint, "checks": {r.item: r.status for r in checks.results} if checks else {},
               "split_brain_tables": list(checks.split_brain) if checks else [],
               "split_brain_tables_after": after.both if after else []}
    report.record("cutover", figures)
    return figures


def summary(move: Move, gate_outcome: Any, checks: Checks, after: splitbrain.SplitBrainReport,
            endpoint: str) -> dict:
    """Record the figures and print one line: what this run did."""
    outcome = {"applied": "switched", "nothing to do": "already in place"}.get(gate_outcome.status,
                                                                             gate_outcome.status)
    figures = record(move, outcome, checks=checks, after=after, endpoint=endpoint)
    print(f"{move.direction.upper()} {move.scope}: {outcome}; endpoint {endpoint}; tables written from both "
          f"sides before: {', '.join(figures['split_brain_tables']) or 'none'}; since the checks began: "
          f"{', '.join(figures['split_brain_tables_after']) or 'none'}")
    return figures
