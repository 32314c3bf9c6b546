"""Phase 5: bi-directional GTID replication between the source and Aurora, as the blog's
"Configure bi-directional replication" does it, done as a careful DBA would.

* :func:`plan_replication_users` (step ``replication_users``): the replication account with only
  REPLICATION SLAVE and REPLICATION CLIENT and the plugin of the source's version, created on the
  source only.  Aurora receives it through replication and never creates it itself (that would be
  an Aurora GTID for the same account).
* :func:`plan_replication` (step ``replication``): Aurora's binlog retention, Aurora replicating
  from the source through its ``mysql.rds_*`` procedures, a wait for the account to reach Aurora,
  the source replicating from Aurora (auto-position), and the ``runbook.canary`` table.  Channels
  already pointing at the right host/port/user with auto-position and running plan nothing.
* :func:`account_checks`, :func:`retention_checks` and :func:`canary` check the result.

For later phases: :func:`canary`.  The channel helpers (:func:`directions`, :func:`require_running`,
:func:`advice`, :func:`executed_gtids`, :func:`wait_until_caught_up`, ...) live in
:mod:`runbook_lib.checks.channels`.
"""
from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbook_lib.checks.channels import (
    AUTH_ERRNOS,
    DIRECTIONS,
    REPLICA_ROLE,
    TO_AURORA,
    TO_SOURCE,
    WRITER_ROLE,
    ChannelNeeds,
    ChannelSpec,
    advice,
    channel_choice,
    channel_needs,
    channel_specs,
    directions,
    executed_gtids,
    not_caught_up,
    require_running,
    server,
    wait_until_caught_up,
)
from runbook_lib.core.approval import Plan, Step
from runbook_lib.core.display import CheckResult
from runbook_lib.core.errors import NotApplied, ParameterError, QueryFailed, ReplicationError
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.sql import Sql
from runbook_lib.mysql.status import ReplicaStatus

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

REPLICATION_PRIVILEGES = frozenset({"REPLICATION SLAVE", "REPLICATION CLIENT"})
CANARY_TABLE = "runbook.canary"
CANARY_DDL = (Sql("CREATE DATABASE IF NOT EXISTS runbook"),
              Sql("CREATE TABLE IF NOT EXISTS runbook.canary (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT "
                  "PRIMARY KEY, written_on VARCHAR(16) NOT NULL, server_uuid CHAR(36) NOT NULL, written_at "
                  "DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), note VARCHAR(100) NULL) ENGINE=InnoDB"))
_HAS_CANARY = ("SELECT 1 FROM information_schema.TABLES "
               "WHERE TABLE_SCHEMA = 'runbook' AND TABLE_NAME = 'canary'")
_PRIVILEGE = re.compile(r"^[A-Z][A-Z_ ]*$")
_GRANT = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<on>\S+) TO \S+(?P<option> WITH GRANT OPTION)?$", re.S)


# --- the account -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Account:
    user: str
    host: str
    plugin: str
    privileges: frozenset[str]           # global (ON *.*) privileges, USAGE left out
    other_grants: tuple[str, ...] = ()   # schema/table/role grants, as SHOW GRANTS prints them


def parse_grants(lines: Iterable[str]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Pure: SHOW GRANTS lines -> (global privileges, every other grant line)."""
    privileges: set[str] = set()
    others = []
    for line in lines:
        m = _GRANT.match(line.strip())
        if not m or m["on"] != "*.*" or m["privs"].startswith("`"):
            others.append(line)
            continue
        privileges |= {p.strip().upper() for p in m["privs"].split(",")}
        if m["option"]:
            privileges.add("GRANT OPTION")
    privileges.discard("USAGE")
    return frozenset(privileges), tuple(others)


def read_account(srv: Server, user: str, host: str) -> Account | None:
    """The account as *srv* has it, or None."""
    row = srv.query_one("SELECT plugin FROM mysql.user WHERE User = %s AND Host = %s", (user, host))
    if row is None:
        return None
    grants = srv.query("SHOW GRANTS FOR %s@%s", (user, host))
    privileges, others = parse_grants(next(iter(g.values())) for g in grants)
    return Account(user, host, str(row["plugin"]), privileges, others)


def _require_account(rb: Session, role: str) -> Account:
    p = rb.params
    account = read_account(server(rb, role), p.replication_user, p.replication_user_host)
    if account is None:
        raise NotApplied(f"replication account {p.replication_user}@{p.replication_user_host} on the {role}",
                         "replication_users")
    return account


def _privileges(a: Account | None) -> str:
    if a is None:
        return "missing"
    return ", ".join(sorted(a.privileges)) + "".join(f"; {g}" for g in a.other_grants)


def account_checks(rb: Session) -> list[CheckResult]:
    """The account on both sides: present, only its privileges, the plugin.  NotApplied if not on the
    source."""
    p, src = rb.params, rb.source()
    choice = channel_choice(rb)
    plugin = choice.plugin
    s = _require_account(rb, "source")
    a = read_account(rb.aurora(), p.replication_user, p.replication_user_host)
    only = all(x is not None and x.privileges == REPLICATION_PRIVILEGES and not x.other_grants
               for x in (s, a))
    plugins = all(x is None or x.plugin == plugin for x in (s, a))
    return [CheckResult("account exists", "yes", "yes (replicated)" if a else "missing",
                        "pass" if a else "fail",
                        "" if a else "it reaches Aurora through replication: apply step 'replication'"),
            CheckResult("privileges", _privileges(s), _privileges(a), "pass" if only else "fail",
                        "" if only else "only REPLICATION SLAVE, REPLICATION CLIENT: run 05 again (it plans "
                                        "the change)"),
            CheckResult("authentication plugin", s.plugin, a.plugin if a else "missing",
                        "pass" if plugins else "warn", "" if plugins else
                        f"{plugin} is expected: {choice.why}")]


# --- plans -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Action:
    step: Step
    role: str = ""                  # where the statement runs
    sql: Sql | None = None
    kind: str = "sql"               # 'sql' | 'start_aurora' | 'wait_account'


@dataclass(frozen=True)
class Change:
    """An approval plan and what applies it: ``rb.gate.apply(change.plan, change.apply)``."""

    plan: Plan
    actions: tuple[_Action, ...] = ()
    replan: Callable[[], Change] | None = field(default=None, repr=False)
    rb: Any = field(default=None, repr=False)
    timeout: float = 300.0

    def apply(self) -> pd.DataFrame:
        """Plan again; PlanStale if the servers changed since the plan was shown; else run every step."""
        import pandas as pd
        if self.plan.step_id == "replication":
            _require_account(self.rb, "source")
        fresh = self.replan() if self.replan else self
        self.plan.require_unchanged(fresh.plan)
        rows = [{"#": n, "target": a.step.target, "action": a.step.action,
                 "result": _run(self.rb, a, self.timeout)} for n, a in enumerate(fresh.actions, 1)]
        return pd.DataFrame(rows, columns=["#", "target", "action", "result"])


def _step(role: str, sql: Sql, action: str, undo: str = "", kind: str = "sql") -> _Action:
    return _Action(Step(role, action, sql.shown(), reversible=bool(undo), undo=undo), role, sql, kind)


def plan_replication_users(rb: Session) -> Change:
    """The account on the source (step ``replication_users``); Aurora gets it by replication."""
    p, src, aur = rb.params, rb.source(), rb.aurora()
    user, host, d = p.replication_user, p.replication_user_host, src.dialect
    choice = channel_choice(rb)
    account, on_aurora = read_account(src, user, host), read_account(aur, user, host)
    create = [_step("source", d.create_replication_user(user, host, rb.replication_password(), choice.plugin),
                    f"create account ({choice.plugin})", f"{d.drop_user(user, host)} (replicates to Aurora)"),
              _step("source", d.grant_replication(user, host), "grant REPLICATION SLAVE, REPLICATION CLIENT",
                    "REVOKE them (replicates to Aurora)")]
    notes = [*choice.notes(),
             "Created on the source only: Aurora receives the account through replication (step "
             f"'replication'). Its password comes from the secret {p.replication_password}."]
    actions: list[_Action] = []
    if account is None:
        actions = create
    elif on_aurora is None and executed_gtids(src) <= executed_gtids(aur):
        notes.append("The account is on the source but not on Aurora, which already has every source "
                     "transaction (a restore from S3 does not carry accounts): it is dropped and created "
                     "again on the source so that replication brings it to Aurora.")
        actions = [_step("source", d.drop_user(user, host), "drop account"), *create]
    else:
        if REPLICATION_PRIVILEGES - account.privileges:
            actions.append(create[1])
        extra = sorted(account.privileges - REPLICATION_PRIVILEGES)
        if extra:
            if not all(_PRIVILEGE.match(x) for x in extra):
                raise ParameterError("replication_user", f"has privileges with unexpected names: {extra}")
            actions.append(_step("source", Sql(f"REVOKE {', '.join(extra)} ON *.* FROM %s@%s", (user, host)),
                                 "revoke what replication does not need", f"GRANT {', '.join(extra)} again"))
        if account.other_grants:
            notes.append("Other grants of the account (not changed here): " + "; ".join(account.other_grants))
        if account.plugin != choice.plugin:
            actions.append(_step("source", d.alter_user_plugin(user, host, rb.replication_password(),
                                                               choice.plugin),
                                 f"switch the account from {account.plugin} to {choice.plugin}",
                                 f"ALTER USER ... IDENTIFIED WITH {account.plugin} (replicates to Aurora)"))
        notes.append("An existing account's password cannot be compared: if a replica later fails with error "
                     "1045, the secret and the account disagree.")
    plan = Plan("replication_users", f"replication account {user}@{host}", tuple(a.step for a in actions),
                "\n".join(notes))
    return Change(plan, tuple(actions), functools.partial(plan_replication_users, rb), rb)


def _check_ready(rb: Session) -> None:
    """What replication needs from phases 1-4, read on the servers."""
    src, aur, p = rb.source(), rb.aurora(), rb.params
    for role, srv, step in (("the source", src, "source_binlog"), ("Aurora", aur, "parameter_group")):
        v = srv.variables("gtid_mode", "log_bin")
        if v["gtid_mode"] != "ON" or v["log_bin"] != "ON":
            raise NotApplied(f"binary logging with GTIDs on {role} (gtid_mode={v['gtid_mode']}, "
                             f"log_bin={v['log_bin']})", step)
    have = {r["SCHEMA_NAME"] for r in aur.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")}
    missing = [s for s in p.app_schemas if s not in have]
    if missing:
        raise NotApplied(f"the restored copy of the source on Aurora (no schema {', '.join(missing)})",
                         "restore")
    for a, b in ((src, aur), (aur, src)):
        lost = GtidSet.parse(str(a.scalar("SELECT @@GLOBAL.gtid_purged") or "")) - executed_gtids(b)
        if lost:
            raise ReplicationError(b.role, f"{a.role} has purged binary logs with transactions {b.role} "
                                   f"lacks ({lost}): auto-position would fail with error 1236",
                                   hint="restore Aurora again from a newer backup (notebook "
                                        "04_backup_restore) and keep binary logs longer "
                                        "(source_binlog_expire_seconds)")


def _channel_actions(rb: Session, spec: ChannelSpec, needs: ChannelNeeds) -> list[_Action]:
    role = REPLICA_ROLE[spec.direction]
    d, password = server(rb, role).dialect, rb.replication_password()
    names = {"stop": "stop replication", "set": f"replicate from {spec.host}:{spec.port}",
             "start": "start replication"}
    if role == "aurora":     # Aurora's master user may only use the procedures
        sql = {"stop": [d.stop_replication()], "start": [d.start_replication()],
               "set": [d.set_external_source(spec.host, spec.port, spec.user, password)]}
        if d.sets_binlog_source_ssl:     # the procedure's ssl_encryption is not implemented: TLS is this call
            sql["set"].append(d.set_binlog_source_ssl(bool(spec.ssl)))
        undo = f"{d.stop_replication()}; {d.reset_external_source()}"
    else:
        sql = {"stop": [d.stop_replica()], "start": [d.start_replica()],
               "set": [d.change_source(spec.host, spec.port, spec.user, password, ssl=bool(spec.ssl),
                                       connect_retry=spec.connect_retry or 60)]}
        undo = f"{d.stop_replica()}; {d.reset_replica_all()}"
    return [_step(role, one, f"{names[op] if n == 0 else 'TLS ' + ('on' if spec.ssl else 'off')} "
                  f"({spec.direction})", undo if op == "set" and n == 0 else "",
                  "start_aurora" if role == "aurora" and op == "start" else "sql")
            for op in needs.ops for n, one in enumerate(sql[op])]


def plan_replication(rb: Session, timeout: float = 300.0) -> Change:
    """Both channels, Aurora's binlog retention and the canary table (step ``replication``).

    *timeout*: seconds the apply waits for the replication account to reach Aurora.
    """
    p = rb.params
    _check_ready(rb)
    src, aur = rb.source(), rb.aurora()
    choice = channel_choice(rb)        # ParameterError/UnsupportedServer when nothing can connect
    actions: list[_Action] = []
    hours = retention_hours(rb)
    if hours != str(p.aurora_binlog_retention_hours):
        actions.append(_step("aurora", aur.dialect.set_binlog_retention(p.aurora_binlog_retention_hours),
                             "binlog retention", f"set it back to {hours or 'NULL (Aurora default)'}"))
    statuses, specs = directions(rb), channel_specs(p, choice)
    needs = {dr: channel_needs(specs[dr], statuses[dr]) for dr in DIRECTIONS}
    actions += _channel_actions(rb, specs[TO_AURORA], needs[TO_AURORA])
    if needs[TO_SOURCE].ops and read_account(aur, p.replication_user, p.replication_user_host) is None:
        detail = (f"until {p.replication_user}@{p.replication_user_host} has come from the source by "
                  f"replication (up to {timeout:g} s; it is not created on Aurora)")
        actions.append(_Action(Step("aurora", "wait for the account", detail), kind="wait_account"))
    actions += _channel_actions(rb, specs[TO_SOURCE], needs[TO_SOURCE])
    if not src.query_one(_HAS_CANARY):
        actions += [_step("source", sql, "canary table (replicates to Aurora)") for sql in CANARY_DDL]
    notes = [*choice.notes(), *(f"{n.direction}: {n.reason}" for n in needs.values() if n.reason)]
    if read_account(src, p.replication_user, p.replication_user_host) is None:
        notes.append("The replication account is not on the source yet: apply step 'replication_users' "
                     "first.")
    plan = Plan("replication", "bi-directional replication", tuple(a.step for a in actions), "\n".join(notes))
    return Change(plan, tuple(actions), functools.partial(plan_replication, rb, timeout), rb, timeout)


def _run(rb: Session, action: _Action, timeout: float) -> str:
    if action.kind == "wait_account":
        return _wait_for_account(rb, timeout)
    srv = server(rb, action.role)
    try:
        srv.execute(action.sql)
    except QueryFailed:
        status = ReplicaStatus.read(srv) if action.kind == "start_aurora" else None
        if status is None or (status.sql_running != "Yes" and status.io_running == "No"):
            raise
        # Aurora's start procedure fails when the channel it started does not run cleanly within a few
        # seconds.  The channel runs all the same; the status cell shows and judges what it reports.
        return f"started, but not running cleanly: IO {status.io_running}" + "".join(
            f"; {t.upper()} error {n}: {m}" for t, n, m in status.errors)
    return "done"


def _wait_for_account(rb: Session, timeout: float) -> str:
    p, aur = rb.params, rb.aurora()
    started = time.monotonic()
    wanted = executed_gtids(rb.source())
    while True:
        caught_up = wanted <= executed_gtids(aur)          # read first: the account may arrive meanwhile
        if read_account(aur, p.replication_user, p.replication_user_host):
            return f"arrived after {time.monotonic() - started:.1f} s"
        status = ReplicaStatus.read(aur)
        if status is None or status.state == "error" or status.last_io_errno in AUTH_ERRNOS:
            raise ReplicationError("aurora", "the replication account cannot arrive: replication "
                                   f"{TO_AURORA} " + (f"reports {status.errors}" if status else
                                                      "is not configured"),
                                   hint=advice(TO_AURORA, status, p.replication_user))
        if caught_up:
            raise ReplicationError("aurora", "Aurora has every source transaction but not the replication "
                                   "account", hint="its creation predates the backup; run 05_replication "
                                   "again: the replication_users plan creates it again on the source")
        if time.monotonic() - started >= timeout:
            raise not_caught_up(aur, wanted - executed_gtids(aur), timeout)
        time.sleep(0.5)


# --- Aurora's binlog retention -----------------------------------------------------------------

def retention_hours(rb: Session) -> str:
    """Aurora's 'binlog retention hours' as its show-configuration procedure reports it ('' for NULL)."""
    aur = rb.aurora()
    rows = aur.query(aur.dialect.show_configuration())
    value = next((r["value"] for r in rows if r["name"] == "binlog retention hours"), None)
    return "" if value is None else str(value)


def retention_checks(rb: Session) -> list[CheckResult]:
    want, have = str(rb.params.aurora_binlog_retention_hours), retention_hours(rb)
    return [CheckResult("binlog retention hours", "", have or "NULL", "pass" if have == want else "fail",
                        "" if have == want else f"expected {want}: apply step 'replication'")]


# --- canary ------------------------------------------------------------------------------------

def canary(rb: Session, timeout: float = 30.0) -> list[CheckResult]:
    """Write a row into ``runbook.canary`` on each side and find it on the other side.

    Waits on the reader for the writer's GTIDs (NotCaughtUp after *timeout* seconds); the row's id
    must follow the writer's auto_increment_offset.  NotApplied/ReplicationError as require_running.
    """
    p = rb.params
    require_running(rb)
    for role in ("source", "aurora"):
        if not server(rb, role).query_one(_HAS_CANARY):
            raise NotApplied(f"table {CANARY_TABLE} on {role}", "replication")
    offsets = {"source": p.source_auto_increment_offset, "aurora": p.aurora_auto_increment_offset}
    results = []
    for d in DIRECTIONS:
        w_role, r_role = WRITER_ROLE[d], REPLICA_ROLE[d]
        writer, reader = server(rb, w_role), server(rb, r_role)
        before = executed_gtids(writer)
        writer.execute(f"INSERT INTO {CANARY_TABLE} (written_on, server_uuid, note) "
                       "VALUES (%s, @@server_uuid, '05_replication canary')", (w_role,))
        row_id = int(writer.scalar("SELECT LAST_INSERT_ID()"))
        after = executed_gtids(writer)
        seconds = wait_until_caught_up(reader, after, timeout)
        seen = reader.query_one(f"SELECT written_on FROM {CANARY_TABLE} WHERE id = %s", (row_id,))
        inc, offset = p.auto_increment_increment, offsets[w_role]
        ok = bool(seen) and row_id % inc == offset % inc
        tip = ("" if ok else f"the row did not reach {r_role} (a replication filter?)" if not seen else
               f"id {row_id} does not follow {w_role}'s auto_increment_offset {offset} (increment {inc}): "
               "rows written on both sides can collide; see phases 02 and 03 (offsets)")
        values = {w_role: f"wrote id {row_id}, GTID {after - before}",
                  r_role: f"seen after {seconds:.2f} s" if seen else "not found"}
        results.append(CheckResult(f"{d}: canary row", **values, status="pass" if ok else "fail", advice=tip))
    return results


def figures(statuses: Mapping[str, ReplicaStatus | None], canary_results: Iterable[CheckResult] = ()) -> dict:
    """What the run summary keeps of this phase."""
    out: dict[str, Any] = {d: {"state": "missing"} if s is None else
                           {"state": s.state, "seconds_behind": s.seconds_behind, "io_errno": s.last_io_errno,
                            "sql_errno": s.last_sql_errno} for d, s in statuses.items()}
    out["canary"] = {r.item: r.status for r in canary_results}
    return out
