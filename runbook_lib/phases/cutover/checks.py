"""Phase 8, before the switch: the scope that moves and the checks that must pass first.

* :func:`move_for` -> :class:`Move`: a scope of the parameters (its schemas and accounts, each an
  :class:`Account`), the side it leaves and the side it goes to; :func:`state_rows`: where its
  accounts stand now.
* :func:`check_before` -> :class:`Checks` (reads only): no session and no write of the scope on the
  side it leaves during a short window (processlist; performance_schema write counters sampled at
  both ends; the binary log's GTID origins), replication running and caught up both ways (GTID
  sets), the scope's tables identical (re-verified since the last finished pass:
  :mod:`runbook_lib.checks.consistency.changes`).  A failure stops the phase.
* :func:`record`: the phase's figures for the run's report.

The notebook calls the checks from here and the switch from :mod:`runbook_lib.phases.cutover.steps`.
"""
from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbook_lib.checks import channels, splitbrain
from runbook_lib.checks.consistency import changes
from runbook_lib.checks.consistency import comparison as consistency
from runbook_lib.core import record as run_record
from runbook_lib.core.display import CheckResult, checks_frame, show_table, verdict
from runbook_lib.core.errors import CheckFailed, NotCaughtUp, ParameterError
from runbook_lib.mysql.sql import Sql

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

DIRECTIONS = {"cutover": ("source", "aurora"), "fallback": ("aurora", "source")}
SIDES = ("source", "aurora")
SYSTEM_USERS = ("system user", "event_scheduler")
SYSTEM_COMMANDS = ("Daemon", "Binlog Dump", "Binlog Dump GTID")
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


def lock_states(server: Server, accounts: Sequence[Account]) -> dict[Account, bool | None]:
    """``account -> locked?`` on ``server`` (None: the account does not exist there)."""
    if not accounts:
        return {}
    rows = server.query("SELECT User AS u, Host AS h, account_locked AS l FROM mysql.user WHERE (User, Host) "
                        f"IN ({', '.join(['(%s, %s)'] * len(accounts))})",
                        tuple(v for a in accounts for v in (a.user, a.host)))
    found = {Account(str(r["u"]), str(r["h"])): str(r["l"]).upper() == "Y" for r in rows}
    return {a: found.get(a) for a in accounts}


def state_rows(rb: Session, move: Move, *, check: bool) -> list[CheckResult]:
    """One row per account: 'open' / 'locked' / 'missing' on each side; judged when ``check``."""
    states = {r: lock_states(channels.server(rb, r), move.accounts) for r in SIDES}
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

    def gate_figures(self) -> dict:
        """The "same data" gate for the run's summary: how it compared ('reverify': only the rows written
        since the last recorded pass; 'full': everything) and in how many seconds (None: not compared)."""
        c = self.comparison
        return {"same_data_check_kind": c.kind if c is not None else None,
                "same_data_check_seconds": round(c.seconds, 3) if c is not None else None}

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
    srv = {r: channels.server(rb, r) for r in SIDES}
    leaving, going = move.leaving, move.going
    results = [CheckResult(f"replication {d} running", **{channels.REPLICA_ROLE[d]: (
        f"IO {s.io_running}, SQL {s.sql_running}" if s else "no channel")},
        status="pass" if s is not None and s.running else "fail", advice=channels.advice(d, s))
        for d, s in channels.directions(rb, settle=5.0).items()]
    results += state_rows(rb, move, check=False)
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
        # Only the rows written since the last finished pass (a full pass when there is none): with the
        # scope's writes stopped, seconds (runbook_lib.checks.consistency.changes).  Reads only.
        comparison = changes.reverify(srv["source"], srv["aurora"], move.schemas, wait_timeout=catch_up_timeout,
                                      progress=False, record=False, max_chunk_rows=chunk_rows)
        same = comparison.ok and bool(comparison.tables)
        rows = {r: f"{comparison.kind} in {comparison.seconds:.2f} s: {len(comparison.tables)} tables, "
                   f"{sum(getattr(t, f'{r}_rows') or 0 for t in comparison.tables):,} rows compared" for r in SIDES}
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
    executed = {r: channels.executed_gtids(s) for r, s in srv.items()}
    out = []
    for replica, writer in (("aurora", "source"), ("source", "aurora")):
        try:
            waited = channels.wait_until_caught_up(srv[replica], executed[writer], timeout)
            value, status, advice = f"caught up ({waited:.1f} s)", "pass", ""
        except NotCaughtUp as e:
            value, status, advice = f"missing {e.missing}", "fail", e.hint
        out.append(CheckResult(f"{replica} has executed every transaction of {writer}", **{replica: value},
                               status=status, advice=advice))
    return out


# --- the run's report --------------------------------------------------------------------------

def record(move: Move, outcome: str, *, checks: Checks | None = None,
           after: splitbrain.SplitBrainReport | None = None, endpoint: str = "") -> dict:
    """Figures for the run's report (section 'cutover'); returned as well."""
    figures = {"scope": move.scope, "direction": move.direction, "from": move.leaving, "to": move.going,
               "schemas": list(move.schemas), "accounts": [str(a) for a in move.accounts], "verdict": outcome,
               "endpoint": endpoint, "checks": {r.item: r.status for r in checks.results} if checks else {},
               "split_brain_tables": list(checks.split_brain) if checks else [],
               "split_brain_tables_after": after.both if after else [],
               **(checks.gate_figures() if checks else {})}
    run_record.record("cutover", figures)
    return figures
