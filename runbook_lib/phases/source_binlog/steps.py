"""Phase 2, the source's binary log: GTIDs, ROW events, safe auto-increment, long enough retention.

:func:`plan_settings` is pure: the server's identity and its current variables in, a
:class:`BinlogPlan` out (the settings table, the statements that make them so, the option-file
lines a restart needs).  On MySQL 8.0+ every dynamic setting is changed online with ``SET PERSIST``
(it survives restarts), GTIDs through MySQL's documented online sequence: enforce_gtid_consistency
WARN then ON; gtid_mode OFF_PERMISSIVE then ON_PERMISSIVE; wait until no anonymous transaction is
running; then ON.  Between WARN and ON the plan holds a window (``source_gtid_warn_seconds``) and stops
at WARN if the server logged a GTID-unsafe statement meanwhile
(:mod:`runbook_lib.phases.source_binlog.gtid_window`).  On 5.7 the same runs with ``SET GLOBAL`` and
my.cnf must say the same.  A
source without a binary log needs a restart (``log_bin`` is static): the plan prints the lines
and :func:`verify` raises NotApplied with them until the server shows the binary log on.
Statements are spelled by :mod:`runbook_lib.mysql.dialect`.
"""
from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runbook_lib.core.approval import Outcome, Plan, Step
from runbook_lib.core.display import show, show_table
from runbook_lib.core.errors import CheckFailed, NotApplied, PlanStale, ServerError
from runbook_lib.core.record import record
from runbook_lib.mysql.dialect import dialect_for
from runbook_lib.mysql.identity import ServerIdentity
from runbook_lib.mysql.sql import Sql
from runbook_lib.phases.source_binlog.gtid_window import observation_source, observe, require_none

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from runbook_lib.context.params import RunbookParameters
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

STEP_ID = "source_binlog"
GTID_MODES = ("OFF", "OFF_PERMISSIVE", "ON_PERMISSIVE", "ON")
ENFORCE_MODES = ("OFF", "WARN", "ON")
VARIABLES = ("server_id", "log_bin", "binlog_format", "sync_binlog", "log_bin_trust_function_creators",
             "auto_increment_increment", "auto_increment_offset", "binlog_expire_logs_seconds",
             "expire_logs_days", "enforce_gtid_consistency", "gtid_mode")
COLUMNS = ["setting", "current", "wanted", "how", "ok"]
ANONYMOUS = "Ongoing_anonymous_transaction_count"


@dataclass(frozen=True)
class Wanted:
    """What the parameters ask of the source."""

    server_id: int
    auto_increment_increment: int
    auto_increment_offset: int
    binlog_expire_seconds: int        # 0: never purge

    @classmethod
    def from_params(cls, p: RunbookParameters) -> Wanted:
        return cls(p.source_server_id, p.auto_increment_increment, p.source_auto_increment_offset,
                   p.source_binlog_expire_seconds)


@dataclass(frozen=True)
class Setting:
    """One row of the settings table."""

    name: str
    current: str
    wanted: str
    how: str           # 'online', 'online + my.cnf' (5.7), 'restart', '' when nothing to do
    ok: bool


@dataclass(frozen=True)
class Action:
    """One thing :func:`apply_plan` does: run ``sql``, or (``sql`` None) wait for anonymous transactions,
    or (``sql`` None, ``observe_seconds`` > 0) hold the WARN window."""

    sql: Sql | None
    undo: str = ""
    observe_seconds: float = 0.0


@dataclass(frozen=True)
class BinlogPlan:
    """Current against wanted settings of the source, and how to get there."""

    target: str
    identity: ServerIdentity
    wanted: Wanted
    current: Mapping[str, str | None]
    settings: tuple[Setting, ...]
    actions: tuple[Action, ...] = ()
    restart: tuple[str, ...] = ()         # settings only a restart can change
    option_lines: tuple[str, ...] = ()    # the [mysqld] block for my.cnf (restart, or 5.7)
    wait_seconds: float = 300.0
    observe_seconds: float = 0.0          # the WARN window before enforce_gtid_consistency=ON (0: none)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.settings)

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.settings if not s.ok)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd
        return pd.DataFrame([{"setting": s.name, "current": s.current, "wanted": s.wanted, "how": s.how,
                              "ok": "✔" if s.ok else "✖"} for s in self.settings], columns=COLUMNS)

    def verdict(self) -> str:
        if self.ok:
            return f"PASS: source binary log: all {len(self.settings)} settings as wanted"
        return (f"FAIL: source binary log: {len(self.pending)} of {len(self.settings)} settings not as "
                f"wanted: {', '.join(self.pending)}")

    def to_plan(self) -> Plan:
        """The approvable plan (step ``source_binlog``): the online changes only."""
        steps = []
        for a in self.actions:
            if a.sql is None and a.observe_seconds:
                steps.append(Step(self.target, "observe", f"hold enforce_gtid_consistency=WARN for "
                                  f"{a.observe_seconds:g} s under the normal load; stop at WARN if 'Statement "
                                  "violates GTID consistency' is logged meanwhile", reversible=True))
            elif a.sql is None:
                steps.append(Step(self.target, "wait", f"until status {ANONYMOUS} = 0 "
                                  f"(at most {self.wait_seconds:g} s)", reversible=True))
            else:
                steps.append(Step(self.target, a.sql.text.split(" = ")[0], a.sql.shown(), True, a.undo))
        notes = ""
        if self.restart:
            notes = (f"Not in this plan: {', '.join(self.restart)} needs a restart of the source with these "
                     "option-file lines:\n" + "\n".join(self.option_lines))
        return Plan(STEP_ID, "online changes to the source's binary log, GTID and auto-increment settings",
                    tuple(steps), notes)

    def option_file_text(self) -> str:
        return "\n".join(self.option_lines)


def _upper(value: str | None) -> str:
    return "—" if value is None else str(value).upper()


def retention_seconds(current: Mapping[str, str | None]) -> int:
    """Effective binlog retention in seconds (0: never purged), from 8.0+ or 5.7 variables."""
    seconds, days = current.get("binlog_expire_logs_seconds"), current.get("expire_logs_days")
    value = int(seconds) if seconds not in (None, "") else 0
    if value == 0 and days not in (None, ""):
        value = int(float(days) * 86400)
    return value


def _undo(d, name: str, previous: str | None) -> str:
    """The statement that puts a variable back (shown in the plan, never run by the runbook)."""
    if previous is None:
        return ""
    value: str | int = int(previous) if str(previous).isdigit() else str(previous)
    return str(d.set_global(name, value))


def _retention_ok(have: int, want: int) -> bool:
    if want == 0:
        return have == 0
    return have == 0 or have >= want


def plan_settings(identity: ServerIdentity, current: Mapping[str, str | None], wanted: Wanted, *,
                  target: str = "source", wait_seconds: float = 300.0, observe_seconds: float = 0.0) -> BinlogPlan:
    """Pure planning: what must change on a server that is *identity* with *current* variables."""
    d = dialect_for(identity, role="source")
    persists = d.persists_settings
    log_bin_on = _upper(current.get("log_bin")) in ("ON", "1")
    restart_all = not persists and not log_bin_on       # 5.7 without binlog: one restart does it all
    online = "restart" if restart_all else ("online" if persists else "online + my.cnf")
    settings: list[Setting] = []
    actions: list[Action] = []
    restart: list[str] = []

    def simple(name: str, want: str | int, ok: bool) -> None:
        have = current.get(name)
        shown = "—" if have is None else str(have)
        settings.append(Setting(name, shown, str(want), "" if ok else online, ok))
        if not ok and not restart_all:
            actions.append(Action(d.set_global(name, want), _undo(d, name, have)))
        elif not ok:
            restart.append(name)

    simple("server_id", wanted.server_id, str(current.get("server_id")) == str(wanted.server_id))
    settings.append(Setting("log_bin", _upper(current.get("log_bin")), "ON", "" if log_bin_on else "restart",
                            log_bin_on))
    if not log_bin_on:
        restart.append("log_bin")
    simple("binlog_format", "ROW", _upper(current.get("binlog_format")) == "ROW")
    simple("sync_binlog", 1, str(current.get("sync_binlog")) == "1")
    simple("log_bin_trust_function_creators", "ON",
           _upper(current.get("log_bin_trust_function_creators")) in ("ON", "1"))
    simple("auto_increment_increment", wanted.auto_increment_increment,
           str(current.get("auto_increment_increment")) == str(wanted.auto_increment_increment))
    simple("auto_increment_offset", wanted.auto_increment_offset,
           str(current.get("auto_increment_offset")) == str(wanted.auto_increment_offset))
    _plan_retention(d, current, wanted, online, restart_all, settings, actions, restart)
    _plan_gtids(d, current, online, restart_all, settings, actions, restart, observe_seconds)
    lines: tuple[str, ...] = ()
    if restart or not persists:
        lines = option_lines(wanted, d.binlog_expire_variable)
    return BinlogPlan(target, identity, wanted, dict(current), tuple(settings), tuple(actions),
                      tuple(restart), lines, wait_seconds, observe_seconds)


def _plan_retention(d, current, wanted: Wanted, online: str, restart_all: bool, settings: list,
                    actions: list, restart: list) -> None:
    var = d.binlog_expire_variable
    want = wanted.binlog_expire_seconds
    value: int = want if var == "binlog_expire_logs_seconds" else math.ceil(want / 86400)
    have = retention_seconds(current)
    ok = _retention_ok(have, want)
    shown_want = "0 (never purge)" if want == 0 else f">= {value}"
    settings.append(Setting(var, "—" if current.get(var) is None else str(current.get(var)), shown_want,
                            "" if ok else online, ok))
    if ok:
        return
    if restart_all:
        restart.append(var)
        return
    days = current.get("expire_logs_days")
    if var == "binlog_expire_logs_seconds" and days not in (None, "", "0"):
        # 8.0 still has the old variable: a non-zero value there would compete with the new one
        actions.append(Action(d.set_global("expire_logs_days", 0), _undo(d, "expire_logs_days", days)))
    actions.append(Action(d.set_global(var, value), _undo(d, var, current.get(var))))


def _plan_gtids(d, current, online: str, restart_all: bool, settings: list, actions: list,
                restart: list, observe_seconds: float = 0.0) -> None:
    enforce = _upper(current.get("enforce_gtid_consistency"))
    enforce = {"0": "OFF", "1": "ON", "2": "WARN"}.get(enforce, enforce)
    mode = _upper(current.get("gtid_mode"))
    enforce_ok, mode_ok = enforce == "ON", mode == "ON"
    how = "online, step by step" if online == "online" else online
    settings.append(Setting("enforce_gtid_consistency", enforce, "ON", "" if enforce_ok else how, enforce_ok))
    settings.append(Setting("gtid_mode", mode, "ON", "" if mode_ok else how, mode_ok))
    if restart_all:
        restart.extend(name for name, ok in (("enforce_gtid_consistency", enforce_ok), ("gtid_mode", mode_ok))
                       if not ok)
        return
    if not enforce_ok:
        start = ENFORCE_MODES.index(enforce) if enforce in ENFORCE_MODES else 0
        previous = enforce if enforce in ENFORCE_MODES else "OFF"
        for value in ENFORCE_MODES[start + 1:]:
            if value == "ON" and observe_seconds > 0:
                actions.append(Action(None, observe_seconds=observe_seconds))   # MySQL: WARN under load first
            actions.append(Action(d.set_global("enforce_gtid_consistency", value),
                                  str(d.set_global("enforce_gtid_consistency", previous))))
            previous = value
    if not mode_ok:
        start = GTID_MODES.index(mode) if mode in GTID_MODES else 0
        previous = GTID_MODES[start]
        for value in GTID_MODES[start + 1:]:
            if value == "ON":
                actions.append(Action(None))
            actions.append(Action(d.set_global("gtid_mode", value), str(d.set_global("gtid_mode", previous))
                                  + " (gtid_mode moves one step at a time)"))
            previous = value


def option_lines(wanted: Wanted, expire_variable: str) -> tuple[str, ...]:
    """The [mysqld] block that gives the wanted settings at the next start (the blog's my.cnf)."""
    expire = (wanted.binlog_expire_seconds if expire_variable == "binlog_expire_logs_seconds"
              else math.ceil(wanted.binlog_expire_seconds / 86400))
    return ("[mysqld]", f"server-id = {wanted.server_id}", "log-bin = mysql-bin", "binlog_format = ROW",
            "sync_binlog = 1", "gtid_mode = ON", "enforce_gtid_consistency = ON",
            "log_bin_trust_function_creators = ON",
            f"auto_increment_increment = {wanted.auto_increment_increment}",
            f"auto_increment_offset = {wanted.auto_increment_offset}", f"{expire_variable} = {expire}",
            "# and remove skip-log-bin / disable-log-bin if the file has them")


# --- talking to the source --------------------------------------------------------------------

def read_current(server: Server) -> dict[str, str | None]:
    return server.variables(*VARIABLES)


def _target(rb: Session) -> str:
    p = rb.params
    return f"source {p.source_label} {p.source_host}:{p.source_port}"


def plan(rb: Session, *, wait_seconds: float = 300.0) -> BinlogPlan:
    """Read the source, show current against wanted settings, return the plan (changes nothing)."""
    server = rb.source()
    result = plan_settings(server.identity, read_current(server), Wanted.from_params(rb.params),
                           target=_target(rb), wait_seconds=wait_seconds,
                           observe_seconds=rb.params.source_gtid_warn_seconds)
    print(f"source: {server.identity.describe()}")
    if any(a.observe_seconds for a in result.actions):
        source = observation_source(server)
        if not source:
            raise CheckFailed("GTID consistency window", ["the source's error log cannot be read from here"],
                              hint="run this phase on the source's host, or set source_gtid_warn_seconds to 0 after "
                                   "checking the error log for 'Statement violates GTID consistency' at WARN yourself")
        print(f"GTID-unsafe statements are read from {source} during the "
              f"{rb.params.source_gtid_warn_seconds:g} s WARN window.")
    show_table(result.to_frame())
    print(result.verdict().replace("FAIL:", "TO DO:", 1))
    if result.restart:
        show(f"A RESTART of the source is needed for {', '.join(result.restart)} (static). Add these lines "
             f"to its option file (my.cnf), then restart MySQL:\n{result.option_file_text()}")
    elif result.option_lines and not result.ok:
        show("MySQL 5.7 has no SET PERSIST: after the online change, add these lines to my.cnf so a "
             f"restart keeps them:\n{result.option_file_text()}")
    return result


def _wait_anonymous(server: Server, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        count = int(server.status_vars(ANONYMOUS)[ANONYMOUS] or 0)
        if count == 0:
            return
        if time.monotonic() >= deadline:
            raise ServerError(server.role, f"{count} anonymous transaction(s) still running after "
                              f"{seconds:g} s; gtid_mode stays ON_PERMISSIVE (safe: all keeps working)",
                              hint="find the long transactions (information_schema.innodb_trx, SHOW "
                                   "PROCESSLIST), let them finish or end them, then run this phase again")
        time.sleep(0.2)


def apply_plan(server: Server, plan: BinlogPlan) -> pd.DataFrame:
    """Run the plan's actions in order; return the settings table read afterwards."""
    now = read_current(server)
    if {k: now.get(k) for k in plan.current} != dict(plan.current):
        changed = [k for k in plan.current if now.get(k) != plan.current[k]]
        raise PlanStale(f"the source's {', '.join(changed)} changed since the plan was made",
                        hint="run the plan cell again and review the new plan")
    for action in plan.actions:
        if action.sql is None and action.observe_seconds:
            require_none(observe(server, action.observe_seconds))
        elif action.sql is None:
            _wait_anonymous(server, plan.wait_seconds)
        else:
            server.execute(action.sql)
    after = plan_settings(server.identity, read_current(server), plan.wanted, target=plan.target,
                          wait_seconds=plan.wait_seconds)
    return after.to_frame()


def applier(rb: Session, plan: BinlogPlan):
    """The function :meth:`Gate.apply` runs for this plan."""
    return functools.partial(apply_plan, rb.source(), plan)


def verify(rb: Session, outcome: Outcome | None = None) -> BinlogPlan:
    """Check the SERVER (not a flag): the settings table, a verdict; NotApplied while anything is missing."""
    server = rb.source()
    result = plan_settings(server.identity, read_current(server), Wanted.from_params(rb.params),
                           target=_target(rb))
    show_table(result.to_frame())
    print(result.verdict())
    record(STEP_ID, {"ok": result.ok, "pending": list(result.pending),
                            "outcome": outcome.status if outcome else "",
                            "restart_needed": list(result.restart)})
    if not result.ok:
        online = [s.name for s in result.settings if not s.ok and s.name not in result.restart]
        hint = f"approve and apply step '{STEP_ID}' first" if online else ""
        if result.restart:
            hint += (" and then " if hint else "") + ("add these lines to the source's option file (my.cnf), "
                                                      f"restart MySQL and run this phase again:\n"
                                                      f"{result.option_file_text()}")
        raise NotApplied(", ".join(f"{s.name}={s.wanted}" for s in result.settings if not s.ok), STEP_ID,
                         hint=hint)
    if result.option_lines:
        show("MySQL 5.7: make sure my.cnf has these lines, or a restart undoes them:\n"
             f"{result.option_file_text()}")
    return result
