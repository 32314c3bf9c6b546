"""The two replication directions between the source and Aurora, for every phase from 5 on.

* :data:`TO_AURORA` / :data:`TO_SOURCE` name a direction (:data:`DIRECTIONS`); :data:`REPLICA_ROLE`
  and :data:`WRITER_ROLE` say which server is its replica and which its writer; :func:`server` gives
  the session's connection for a role.
* :func:`channel_choice`: the replication account's plugin and each direction's TLS that connect
  these two servers (:mod:`runbook_lib.mysql.channel_choice`);
* :func:`executed_gtids` and :func:`wait_until_caught_up`: GTID sets, and waiting for a replica;
  :func:`channel_report`: what a replica's channel says when a wait gives up (its last receiver and
  applier errors, number and text, or that the applier is just behind by N transactions and what
  its threads wait on, e.g. 'Waiting for global read lock').
* :func:`channel_specs`: how each direction's channel should be configured, from the parameters;
  :func:`channel_needs`: what a channel lacks to match its spec (stop / set / start).
* :func:`directions` reads both channels' status; :func:`direction_checks` judges them (pure),
  :func:`advice` says what to do about one, :func:`require_running` stops when one does not run,
  :func:`show_directions` shows them side by side with a verdict.

Phase 5 (:mod:`runbook_lib.phases.replication.steps`) sets the channels up; later phases
use these helpers from here.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runbook_lib.core.display import CheckResult, checks_frame, show_table, verdict
from runbook_lib.core.errors import NotApplied, NotCaughtUp, ReplicationError
from runbook_lib.mysql.channel_choice import ChannelChoice, choose_channel, native_password_active
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.status import ReplicaStatus, side_by_side

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.context.params import RunbookParameters
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

TO_AURORA = "source → aurora"          # Aurora replicates from the source
TO_SOURCE = "aurora → source"          # the source replicates from Aurora
DIRECTIONS = (TO_AURORA, TO_SOURCE)
REPLICA_ROLE = {TO_AURORA: "aurora", TO_SOURCE: "source"}
WRITER_ROLE = {TO_AURORA: "source", TO_SOURCE: "aurora"}
AUTH_ERRNOS = frozenset({1045, 2061})   # the IO thread cannot log in: password, or no TLS for sha2
ER_ACCESS_DENIED, CR_AUTH_PLUGIN_ERR = 1045, 2061   # 2061: "Authentication requires secure connection"
NETWORK_ERRNOS = frozenset({2003, 2005, 2013})


def server(rb: Session, role: str) -> Server:
    """The session's connection for a role ('source' / 'aurora')."""
    return rb.source() if role == "source" else rb.aurora()


# --- GTIDs: waiting for replication ------------------------------------------------------------

def executed_gtids(srv: Server) -> GtidSet:
    """``@@GLOBAL.gtid_executed`` of a server."""
    return GtidSet.parse(str(srv.scalar("SELECT @@GLOBAL.gtid_executed") or ""))


def wait_until_caught_up(replica: Server, gtid_set: GtidSet | str, timeout: float, *,
                         poll: float = 5.0) -> float:
    """Wait until *replica* has executed *gtid_set*; return the seconds waited.

    WAIT_FOR_EXECUTED_GTID_SET in slices of at most *poll* seconds (below the connection's read
    timeout); NotCaughtUp naming the GTIDs still missing after *timeout* seconds.
    """
    target = gtid_set if isinstance(gtid_set, GtidSet) else GtidSet.parse(gtid_set)
    started = time.monotonic()
    while True:
        remaining = started + timeout - time.monotonic()
        timed_out = replica.scalar("SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s)",
                                   (str(target), round(max(0.1, min(poll, remaining)), 3)))
        if not timed_out:
            return time.monotonic() - started
        if remaining <= poll:
            missing = target - executed_gtids(replica)
            if missing:
                raise not_caught_up(replica, missing, timeout)
            return time.monotonic() - started


_WORKER_ERRORS = ("SELECT WORKER_ID AS worker, LAST_ERROR_NUMBER AS errno, LAST_ERROR_MESSAGE AS message "
                  "FROM performance_schema.replication_applier_status_by_worker WHERE LAST_ERROR_NUMBER <> 0")


_APPLIER_STATES = ("SELECT PROCESSLIST_STATE AS state FROM performance_schema.threads WHERE (NAME LIKE "
                   "'thread/sql/%worker' OR NAME IN ('thread/sql/replica_sql', 'thread/sql/slave_sql')) AND "
                   "PROCESSLIST_STATE IS NOT NULL")
_IDLE_STATES = ("from Coordinator", "read all relay log")     # waiting for work, not stuck on something


def not_caught_up(replica: Server, missing: GtidSet, waited: float) -> NotCaughtUp:
    """The NotCaughtUp of a wait that gave up, naming what the channel reports, with its advice."""
    status = ReplicaStatus.read(replica)
    direction = next(d for d in DIRECTIONS if REPLICA_ROLE[d] == replica.role) \
        if replica.role in REPLICA_ROLE.values() else ""
    tip = advice(direction, status) if direction and status is not None and status.errors else ""
    return NotCaughtUp(replica.role, str(missing), waited, cause=channel_report(replica, missing, status),
                       hint=tip)


def channel_report(replica: Server, missing: GtidSet | None = None, status: ReplicaStatus | None = None) -> str:
    """What *replica*'s channel reports, for a wait that gave up: each thread's last error with its
    number and text (the applier workers' own error first: the coordinator's only points at it), or
    'no error, the applier is just behind by N transactions' (N: *missing*'s size) with what its busy
    threads wait on (performance_schema.threads: 'Waiting for global read lock', a row lock...)."""
    status = status or ReplicaStatus.read(replica)
    if status is None:
        return f"{replica.role} has no replication channel"
    found: list[str] = [f"applier worker {r['worker']} error {r['errno']}: {r['message']}"
                        for r in replica.query(_WORKER_ERRORS)] if status.last_sql_errno else []
    found += [f"{'receiver (IO)' if t == 'io' else 'applier (SQL)'} error {n}: {m}" for t, n, m in status.errors
              if not (t == "sql" and found)]
    threads = f"IO {status.io_running}, SQL {status.sql_running}"
    if found:
        return f"{threads}; " + "; ".join(found)
    n = missing.count() if missing is not None else None
    behind = f"{n} transaction{'' if n == 1 else 's'}" if n is not None else "some transactions"
    if missing is not None and not missing and status.running:
        return f"{threads}; no error, nothing missing"
    if not status.running:
        return f"{threads}; no error, but a thread is stopped (STOP REPLICA?): {behind} not applied"
    busy = sorted({str(r["state"]) for r in replica.query(_APPLIER_STATES)
                   if not any(idle in str(r["state"]) for idle in _IDLE_STATES)})
    return f"{threads}; no error, the applier is just behind by {behind}" + (
        f" (Seconds_Behind_Source {status.seconds_behind})" if status.seconds_behind is not None else "") + (
        f"; the applier is: {', '.join(busy)}" if busy else "")


# --- the two channels --------------------------------------------------------------------------

@dataclass(frozen=True)
class ChannelSpec:
    """How one direction's channel (the replica's default channel) should be configured."""

    direction: str
    host: str
    port: int
    user: str
    ssl: bool | None                     # None: not compared (no channel choice at hand)
    connect_retry: int | None = None     # None: chosen by Aurora's procedure, not compared

    def differences(self, status: ReplicaStatus) -> list[str]:
        """What differs from *status*, as 'name have (wanted want)'; [] when it matches."""
        pairs = [("source host", status.source_host.lower(), self.host.lower()),
                 ("source port", status.source_port, self.port), ("user", status.source_user, self.user),
                 ("auto position", status.auto_position, True)]
        if self.ssl is not None:
            pairs.append(("TLS", status.ssl_allowed, self.ssl))
        if self.connect_retry is not None:
            pairs.append(("connect retry", status.connect_retry, self.connect_retry))
        return [f"{name} {have!r} (wanted {want!r})" for name, have, want in pairs if have != want]


def channel_choice(rb: Session) -> ChannelChoice:
    """The account plugin and channel TLS that connect this source and this Aurora (reads both)."""
    src = rb.source()
    status = src.scalar("SELECT PLUGIN_STATUS FROM information_schema.PLUGINS "
                        "WHERE PLUGIN_NAME = 'mysql_native_password'")
    return choose_channel(src.identity, rb.aurora().identity, tls=rb.params.replication_ssl,
                          native_password=native_password_active(src.identity, status))


def channel_specs(params: RunbookParameters, choice: ChannelChoice | None = None) -> dict[str, ChannelSpec]:
    """The wanted configuration of both directions, from the parameters and the *choice* of TLS per
    direction (without one, Aurora's channel TLS is not compared; the source's follows replication_ssl)."""
    p = params
    return {TO_AURORA: ChannelSpec(TO_AURORA, p.source_host_for_aurora(), p.source_port, p.replication_user,
                                   choice.to_aurora_tls if choice else None),
            TO_SOURCE: ChannelSpec(TO_SOURCE, p.aurora_host_for_source(), p.aurora_port, p.replication_user,
                                   choice.to_source_tls if choice else p.replication_ssl,
                                   p.replication_connect_retry)}


@dataclass(frozen=True)
class ChannelNeeds:
    """What a channel needs: ``ops`` from 'stop', 'set', 'start' in order, and why."""

    direction: str
    ops: tuple[str, ...] = ()
    reason: str = ""


def channel_needs(spec: ChannelSpec, status: ReplicaStatus | None) -> ChannelNeeds:
    """Pure: compare a channel with its spec.  An SQL error is left to troubleshooting."""
    d, s = spec.direction, status
    if s is None:
        return ChannelNeeds(d, ("set", "start"), "no replication channel yet")
    stop = () if s.io_running == "No" and s.sql_running == "No" else ("stop",)
    diff = spec.differences(s)
    if diff:
        return ChannelNeeds(d, stop + ("set", "start"), "configured differently: " + "; ".join(diff))
    if s.last_io_errno in AUTH_ERRNOS and s.io_running != "Yes":
        why = (f"the IO thread cannot log in (error {s.last_io_errno}): " +
               ("the account's caching_sha2_password needs TLS on this channel: set it again with the chosen "
                "TLS" if s.last_io_errno == CR_AUTH_PLUGIN_ERR else "set the password from the secret again"))
        return ChannelNeeds(d, stop + ("set", "start"), why)
    if s.last_sql_errno and s.sql_running != "Yes":
        return ChannelNeeds(d, (), f"stopped on SQL error {s.last_sql_errno}: not fixed by this phase "
                                   "(see the troubleshooting notebook)")
    if s.sql_running == "Yes" and s.io_running in ("Yes", "Connecting"):
        return ChannelNeeds(d)
    return ChannelNeeds(d, stop + ("start",), "replication is stopped")


# --- both directions' status -------------------------------------------------------------------

def directions(rb: Session, settle: float = 0.0) -> dict[str, ReplicaStatus | None]:
    """Both directions' status, read on each replica (None: no channel).

    With *settle* > 0, read again until no IO thread is still connecting without a login error, or
    *settle* seconds pass (a channel just started shows 'Connecting' for a moment).
    """
    deadline = time.monotonic() + settle
    while True:
        statuses = {TO_AURORA: ReplicaStatus.read(rb.aurora()), TO_SOURCE: ReplicaStatus.read(rb.source())}
        if time.monotonic() >= deadline or not any(
                s is not None and s.state == "connecting" and s.last_io_errno not in AUTH_ERRNOS
                for s in statuses.values()):
            return statuses
        time.sleep(0.5)


def advice(direction: str, status: ReplicaStatus | None, user: str = "the replication user") -> str:
    """What a DBA should do about one direction's state ('' when it runs cleanly)."""
    replica, source = REPLICA_ROLE[direction], WRITER_ROLE[direction]
    if status is None:
        return "approve and apply step 'replication' (notebook 05_replication)"
    io, sql = status.last_io_errno, status.last_sql_errno
    if status.running and not status.errors:
        return ""
    if io == CR_AUTH_PLUGIN_ERR:
        return (f"{replica} cannot log in to {source} as {user!r} (error {io}): the account uses "
                "caching_sha2_password, which fails to authenticate on a channel without TLS, whatever the "
                "password, once the server's authentication cache no longer holds it (Source_SSL_Allowed is "
                f"{'Yes' if status.ssl_allowed else 'No'}); run 05_replication again: it chooses TLS where "
                "Aurora offers it (mysql.rds_set_binlog_source_ssl, 3.06+) or an account that works without")
    if io in AUTH_ERRNOS:
        return (f"{replica} cannot log in to {source} as {user!r} (error {io}): the secret "
                "replication_password does not match the account; "
                "fix the secret, then run 05_replication again: it sets the password on both channels")
    if io in NETWORK_ERRNOS:
        return (f"{replica} cannot reach {status.source_host}:{status.source_port}: check {source}_host / "
                f"{source}_replication_host, firewalls or security groups, and that {source} runs (the "
                "replica retries every connect_retry seconds)")
    if io == 1236:
        return (f"{source} no longer has binary logs {replica} needs (purged): restore Aurora again from a "
                "new backup (notebook 04_backup_restore) and keep binary logs longer")
    if sql and status.sql_running != "Yes":
        return (f"{replica} stopped on a transaction it cannot apply: see the troubleshooting notebook "
                "(step fix:<channel>); the GTID is in the error text")
    if status.state == "connecting":
        return "the IO thread is connecting: run this cell again in a few seconds"
    return f"replication {direction} is stopped: run 05_replication again to start it"


def _check(direction: str, item: str, value: Any, ok: bool | None, tip: str = "") -> CheckResult:
    status = "info" if ok is None else "pass" if ok else "fail"
    return CheckResult(f"{direction}: {item}", **{REPLICA_ROLE[direction]: value}, status=status,
                       advice="" if ok in (None, True) else tip)


def direction_checks(statuses: Mapping[str, ReplicaStatus | None],
                     specs: Mapping[str, ChannelSpec]) -> list[CheckResult]:
    """Pure: per direction, channel present, both threads, no error, configured as the parameters say.

    Each value is in the column of the direction's replica (where the channel lives).
    """
    out = []
    for d in DIRECTIONS:
        s = statuses.get(d)
        if s is None:
            out.append(_check(d, "channel", "no replication channel", False, advice(d, None)))
            continue
        tip, diff = advice(d, s, specs[d].user), specs[d].differences(s)
        errors = "; ".join(f"{t.upper()} {n}: {m}" for t, n, m in s.errors)
        configured = f"{s.source_host}:{s.source_port} as {s.source_user}, auto position"
        out += [_check(d, "IO thread", s.io_running, s.io_running == "Yes", tip),
                _check(d, "SQL thread", s.sql_running, s.sql_running == "Yes", tip),
                _check(d, "last errors", errors or "none", not errors, tip),
                _check(d, "configuration", "; ".join(diff) or configured, not diff,
                       "run 05_replication again: it plans the change"),
                _check(d, "seconds behind", "NULL" if s.seconds_behind is None else s.seconds_behind, None)]
    return out


def require_running(rb: Session, statuses: Mapping[str, ReplicaStatus | None] | None = None
                    ) -> dict[str, ReplicaStatus]:
    """Both directions' status; NotApplied when a channel is missing, ReplicationError when one does
    not run (naming each thread's error, with :func:`advice` as the hint)."""
    statuses = dict(statuses if statuses is not None else directions(rb))
    missing = [d for d in DIRECTIONS if statuses.get(d) is None]
    if missing:
        raise NotApplied("replication " + ("in both directions" if len(missing) == 2 else missing[0]),
                         "replication")
    failing = [d for d in DIRECTIONS if not statuses[d].running]
    if failing:
        first = statuses[failing[0]]
        text = "; ".join(f"replication {d} is not running (IO {statuses[d].io_running}, SQL "
                         f"{statuses[d].sql_running})" + "".join(f"; {t.upper()} error {n}: {m}"
                                                                for t, n, m in statuses[d].errors)
                         for d in failing)
        errno = first.errors[0][1] if first.errors else 0
        raise ReplicationError(REPLICA_ROLE[failing[0]], text, errno=errno,
                               hint=advice(failing[0], first, rb.params.replication_user))
    return statuses


def show_directions(rb: Session, statuses: Mapping[str, ReplicaStatus | None]) -> list[CheckResult]:
    """Both directions side by side, the first failed check of each with its advice, a verdict line;
    then :func:`require_running`, and ReplicationError if a channel differs from the parameters."""
    show_table(side_by_side(statuses))
    results = direction_checks(statuses, channel_specs(rb.params, channel_choice(rb)))
    failed = [r for r in results if r.status == "fail"]
    first = {r.item.split(":")[0]: r for r in reversed(failed)}
    if first:
        show_table(checks_frame(first[d] for d in DIRECTIONS if d in first))
    print(verdict(results, "bi-directional replication"))
    require_running(rb, statuses)
    if failed:
        worst = failed[0]
        raise ReplicationError(REPLICA_ROLE[worst.item.split(":")[0]], "replication runs but differs from "
                               f"the parameters: {worst.source or worst.aurora}",
                               hint="run 05_replication again: it plans the change")
    return results
