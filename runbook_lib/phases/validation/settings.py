"""Phases 6 and 8: the settings the earlier phases made, read again on both servers, and what the
channels report.  A setting that drifted since (someone ran ``SET PERSIST``, a parameter group was
edited, an account was changed) is named with its fix, so a failure shows its cause, not only its
symptom (lag, a wait that gives up).

* :func:`setting_rows` (reads only): per setting, the value on each side against what phases 2, 3
  and 5 made it: ``binlog_format``, ``gtid_mode``, ``enforce_gtid_consistency``,
  ``auto_increment_increment``/``auto_increment_offset``, ``read_only``/``super_read_only``, binary log
  retention (the source's ``binlog_expire_logs_seconds``, Aurora's ``binlog retention hours``) and
  the replication account (present, only its two privileges, not locked).
* :func:`channel_rows` (reads only): per direction, what its channel reports
  (:func:`runbook_lib.checks.channels.channel_report`).
* :func:`check`: both tables as one, shown with a verdict; CheckFailed (carrying the table) when a
  row failed.

The MySQL manual ("Setting The Binary Log Format") says the format can be switched at runtime except
in some situations; on the lab's MySQL 9.7 two of them show: ``SET PERSIST binlog_format`` is refused
while a replication applier runs (error 3747), so its fix stops the applier first; and a server whose
``binlog_format`` is STATEMENT stops its applier on the first row event it receives (error 1666,
"impossible to write to binary log since statement is in row format and BINLOG_FORMAT = STATEMENT"),
which is the applier error this table shows beside the setting.  On Aurora these variables come from
the DB cluster parameter group (AWS, "Configuring Aurora MySQL binary logging"), and its binary log
retention from ``mysql.rds_set_configuration``; 03_parameter_group and 05_replication plan both.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from runbook_lib.checks import channels
from runbook_lib.core.display import CheckResult, checks_frame, show_checks
from runbook_lib.core.errors import CheckFailed
from runbook_lib.mysql.status import ReplicaStatus
from runbook_lib.phases.replication.steps import REPLICATION_PRIVILEGES, read_account, retention_hours
from runbook_lib.phases.source_binlog.steps import retention_seconds

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

SIDES = ("source", "aurora")
VARIABLES = ("binlog_format", "gtid_mode", "enforce_gtid_consistency", "auto_increment_increment",
             "auto_increment_offset", "read_only", "super_read_only", "binlog_expire_logs_seconds",
             "expire_logs_days")
GROUP_FIX = "set {name} = {want} in the DB cluster parameter group (03_parameter_group plans it), then " \
            "reboot the writer if the parameter is static"


def _source_fix(name: str, want: str) -> str:
    if name == "binlog_format":
        return (f"on the source: STOP REPLICA SQL_THREAD; SET PERSIST binlog_format = '{want}'; START REPLICA "
                "SQL_THREAD (MySQL refuses the change while an applier runs, error 3747); the applier then "
                "retries the transaction it stopped on")
    if name in ("gtid_mode", "enforce_gtid_consistency"):
        return f"on the source: run 02_source_binlog again (it plans MySQL's online sequence to {name}={want})"
    if name in ("read_only", "super_read_only"):
        return "on the source: SET PERSIST super_read_only = OFF; SET PERSIST read_only = OFF"
    return f"on the source: SET PERSIST {name} = {want} (02_source_binlog plans it)"


def _aurora_fix(name: str, want: str) -> str:
    if name in ("read_only", "super_read_only"):
        return ("aurora_host must name the cluster's writer (a reader is read-only), or the parameter group "
                "sets read_only: clear it")
    return GROUP_FIX.format(name="gtid-mode" if name == "gtid_mode" else name, want=want)


def _row(name: str, have: dict[str, str | None], want: dict[str, str],
         same: Callable[[str | None, str], bool] = lambda h, w: str(h).upper() == w.upper()) -> CheckResult:
    drifted = [r for r in SIDES if not same(have[r], want[r])]
    shown = {r: f"{'—' if have[r] is None else have[r]}" + ("" if r not in drifted else f" (wanted {want[r]})")
             for r in SIDES}
    fixes = [(_source_fix if r == "source" else _aurora_fix)(name, want[r]) for r in drifted]
    return CheckResult(name, shown["source"], shown["aurora"], "fail" if drifted else "pass", "; ".join(fixes))


def _retention_row(rb: Session, current: dict[str, str | None]) -> CheckResult:
    p = rb.params
    have_s, want_s = retention_seconds(current), p.source_binlog_expire_seconds
    ok_s = have_s == 0 if want_s == 0 else have_s == 0 or have_s >= want_s     # 0: never purged
    have_a, want_a = retention_hours(rb), str(p.aurora_binlog_retention_hours)
    ok_a = have_a == want_a
    advice = ([f"on the source: SET PERSIST binlog_expire_logs_seconds = {want_s} (02_source_binlog plans it)"]
              if not ok_s else []) + ([f"on Aurora: CALL mysql.rds_set_configuration('binlog retention hours', "
                                       f"{want_a}) (05_replication plans it)"] if not ok_a else [])
    return CheckResult("binary log retention", f"{have_s} s" + ("" if ok_s else f" (wanted {want_s} s or more)"),
                       f"{have_a or 'NULL'} h" + ("" if ok_a else f" (wanted {want_a} h)"),
                       "pass" if ok_s and ok_a else "fail", "; ".join(advice))


def _account_row(rb: Session, srv: dict[str, Server]) -> CheckResult:
    p = rb.params
    user, host = p.replication_user, p.replication_user_host
    shown, problems = {}, []
    for r in SIDES:
        account = read_account(srv[r], user, host)
        row = srv[r].query_one("SELECT account_locked AS l FROM mysql.user WHERE User = %s AND Host = %s",
                               (user, host))
        if account is None:
            shown[r] = "missing"
            problems.append(f"missing on {r}")
            continue
        extra = sorted(account.privileges - REPLICATION_PRIVILEGES) + list(account.other_grants)
        lacking = sorted(REPLICATION_PRIVILEGES - account.privileges)
        locked = row is not None and str(row["l"]).upper() == "Y"
        shown[r] = ", ".join(sorted(account.privileges)) + ("; LOCKED" if locked else "")
        problems += [f"{r} lacks {', '.join(lacking)}"] * bool(lacking) + \
                    [f"{r} has more than it needs: {'; '.join(extra)}"] * bool(extra) + [f"locked on {r}"] * locked
    return CheckResult(f"replication account {user}@{host}", shown["source"], shown["aurora"],
                       "fail" if problems else "pass",
                       f"{'; '.join(problems)}: run 05_replication again (step replication_users plans the "
                       "account on the source; it replicates to Aurora)" if problems else "")


def setting_rows(rb: Session) -> list[CheckResult]:
    """Each setting the earlier phases made, on both sides, against the parameters (reads only)."""
    p = rb.params
    srv = {r: channels.server(rb, r) for r in SIDES}
    current = {r: s.variables(*VARIABLES) for r, s in srv.items()}
    have = {name: {r: current[r].get(name) for r in SIDES} for name in VARIABLES}
    both = {r: "" for r in SIDES}
    rows = [_row("binlog_format", have["binlog_format"], {r: "ROW" for r in both}),
            _row("gtid_mode", have["gtid_mode"], {r: "ON" for r in both}),
            _row("enforce_gtid_consistency", have["enforce_gtid_consistency"], {r: "ON" for r in both}),
            _row("auto_increment_increment", have["auto_increment_increment"],
                 {r: str(p.auto_increment_increment) for r in both}),
            _row("auto_increment_offset", have["auto_increment_offset"],
                 {"source": str(p.source_auto_increment_offset), "aurora": str(p.aurora_auto_increment_offset)}),
            _row("read_only", have["read_only"], {r: "OFF" for r in both}),
            _row("super_read_only", have["super_read_only"], {r: "OFF" for r in both})]
    rows.append(_retention_row(rb, current["source"]))
    rows.append(_account_row(rb, srv))
    return rows


def channel_rows(rb: Session) -> list[CheckResult]:
    """Per direction, what its channel reports: a missing channel or a stopped thread fails, a past error
    of a running thread warns."""
    out = []
    for d in channels.DIRECTIONS:
        role = channels.REPLICA_ROLE[d]
        replica = channels.server(rb, role)
        status = ReplicaStatus.read(replica)
        missing = channels.executed_gtids(channels.server(rb, channels.WRITER_ROLE[d])) - \
            channels.executed_gtids(replica)
        text = channels.channel_report(replica, missing, status) if status else "no replication channel"
        state = "fail" if status is None or not status.running else "warn" if status.errors else "pass"
        out.append(CheckResult(f"replication {d}: what the channel reports", **{role: text}, status=state,
                               advice="" if state == "pass" else channels.advice(d, status) + (
                                   "; a setting above that drifted is the likely cause: fix it first"
                                   if status is not None else "")))
    return out


def failure_text(row: CheckResult) -> str:
    """Pure: a failed row as 'item on side: value' for each side it failed on."""
    sides = [r for r in SIDES if "(wanted" in str(getattr(row, r))] or [r for r in SIDES if getattr(row, r)]
    return f"{row.item} (" + "; ".join(f"{r}: {getattr(row, r)}" for r in sides) + ")"


def check(rb: Session) -> list[CheckResult]:
    """Both tables as one, with a verdict; CheckFailed naming each failed row."""
    results = setting_rows(rb) + channel_rows(rb)
    show_checks(results, "the settings the earlier phases made, and the channels")
    failed = [failure_text(r) for r in results if r.status == "fail"]
    if failed:
        raise CheckFailed("settings and channels", failed, table=checks_frame(results),
                          hint="each failed row says what drifted and how to set it back; fix it, then run again")
    return results
