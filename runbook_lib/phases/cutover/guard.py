"""Phase 8, the guardrails before a switch: one table, every row of which must pass.

Modelled on AWS Blue/Green Deployments' switchover guardrails ("Switching a blue/green deployment in
Amazon RDS": the switchover checks replica lag and the replication's health first, and stops without
changing anything if one fails) and Vitess' SwitchTraffic (a lag gate and the reverse replication
ready before the switch); errant GTIDs as orchestrator names them.

:func:`guardrails` -> :class:`runbook_lib.phases.cutover.checks.Checks` (reads only; nothing is written,
so a dry run can show it): the rows of :func:`runbook_lib.phases.cutover.checks.check_before` (no
session or write of the scope on the side it leaves, both directions running and caught up, the same
data), with, in front of them,

* **lag** of each direction under ``lag_limit_s``: ``Seconds_Behind_Source`` sampled on each replica
  across the write window and the time each replica took to execute what the other side had executed
  (``WAIT_FOR_EXECUTED_GTID_SET``), the larger of the two;
* **the way back**: the direction from the side the scope goes to back to the side it leaves runs
  without error (a fallback needs it);
* **errant GTIDs** on either side: transactions one side has executed that the other has not and that
  did not begin there (so no replication will bring them over), and a side's own transactions the
  other lacks that its binary logs no longer hold;

and after them the settings the earlier phases made (:func:`runbook_lib.phases.validation.settings.setting_rows`).
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from runbook_lib.checks import channels
from runbook_lib.core.display import CheckResult
from runbook_lib.core.errors import NotCaughtUp, ParameterError
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.status import ReplicaStatus
from runbook_lib.phases.cutover.checks import SIDES, Checks, Move, check_before
from runbook_lib.phases.validation.settings import setting_rows

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.checks.splitbrain import SplitBrainReport
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

OTHER = {"source": "aurora", "aurora": "source"}


def check_knobs(*, lag_limit_s: float, switch_timeout_s: float, dry_run: bool) -> None:
    """ParameterError naming the first bad knob of the switch, before anything runs."""
    for name, value, low, high in (("lag_limit_seconds", lag_limit_s, 0.1, 3600),
                                   ("switch_timeout_seconds", switch_timeout_s, 1, 3600)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ParameterError(name, f"must be a number from {low:g} to {high:g}, not {value!r}")
    if not isinstance(dry_run, bool):
        raise ParameterError("dry_run", f"must be True or False, not {dry_run!r}")


def _seconds_behind(rb: Session) -> dict[str, int | None]:
    """Seconds_Behind_Source of each direction now (None: NULL or no channel)."""
    out = {}
    for d in channels.DIRECTIONS:
        s = ReplicaStatus.read(channels.server(rb, channels.REPLICA_ROLE[d]))
        out[d] = None if s is None else s.seconds_behind
    return out


def _catch_up_seconds(rb: Session, timeout: float) -> dict[str, float | None]:
    """Per direction, the seconds its replica took to execute what its writer had executed now."""
    out: dict[str, float | None] = {}
    for d in channels.DIRECTIONS:
        writer, replica = (channels.server(rb, channels.WRITER_ROLE[d]), channels.server(rb, channels.REPLICA_ROLE[d]))
        try:
            out[d] = channels.wait_until_caught_up(replica, channels.executed_gtids(writer), timeout, poll=1.0)
        except NotCaughtUp:
            out[d] = None
    return out


def lag_rows(behind: list[dict[str, int | None]], catch_up: dict[str, float | None],
             limit_s: float) -> list[CheckResult]:
    """Pure: per direction, the worst Seconds_Behind_Source sampled and the catch-up time against the limit."""
    rows = []
    for d in channels.DIRECTIONS:
        sampled = [b[d] for b in behind]
        nulls = sum(v is None for v in sampled)
        worst = max([v for v in sampled if v is not None], default=None)
        took = catch_up.get(d)
        lag = None if nulls or took is None else max(float(worst or 0), took)
        ok = lag is not None and lag <= limit_s
        value = (f"Seconds_Behind_Source max {worst if worst is not None else 'NULL'}"
                 + (f" (NULL in {nulls} of {len(sampled)} samples)" if nulls else "")
                 + (f"; caught up in {took:.2f} s" if took is not None else "; did not catch up"))
        rows.append(CheckResult(f"lag {d} ≤ {limit_s:g} s", **{channels.REPLICA_ROLE[d]: value},
                                status="pass" if ok else "fail",
                                advice="" if ok else "a thread was not running (NULL) or the replica is behind: "
                                                     "wait until it catches up (or find what holds it: "
                                                     "its channel's row below), then run again"))
    return rows


def way_back_row(rb: Session, move: Move) -> CheckResult:
    """The direction from the side the scope goes to back to the side it leaves: running, no error."""
    d = channels.TO_SOURCE if move.going == "aurora" else channels.TO_AURORA
    status = ReplicaStatus.read(channels.server(rb, move.leaving))
    ok = status is not None and status.running and not status.errors
    value = "no channel" if status is None else f"IO {status.io_running}, SQL {status.sql_running}" + "".join(
        f"; {t.upper()} error {n}: {m}" for t, n, m in status.errors)
    return CheckResult(f"the way back: replication {d} runs without error", **{move.leaving: value},
                       status="pass" if ok else "fail",
                       advice="" if ok else "without it a fallback has nowhere to go: " + channels.advice(d, status))


def errant(mine: GtidSet, theirs: GtidSet, my_uuid: str, my_purged: GtidSet) -> tuple[GtidSet, GtidSet]:
    """Pure: (transactions on this side that the other lacks and that did not begin here; this side's own
    transactions the other lacks that this side's binary logs no longer hold)."""
    extra = mine - theirs
    foreign = GtidSet.parse(",".join(f"{u}:{t + ':' if t else ''}{s}-{e}" for u, t, s, e in extra.intervals()
                                     if u != my_uuid))
    return foreign, (extra - foreign) & my_purged


def errant_rows(srv: dict[str, Server]) -> list[CheckResult]:
    """One row: errant GTIDs on each side ('none'), naming them and the fix."""
    executed = {r: channels.executed_gtids(s) for r, s in srv.items()}
    purged = {r: GtidSet.parse(str(s.scalar("SELECT @@GLOBAL.gtid_purged") or "")) for r, s in srv.items()}
    found = {r: errant(executed[r], executed[OTHER[r]], srv[r].identity.server_uuid, purged[r]) for r in SIDES}
    shown = {r: "; ".join([f"{f.count()} not from here: {f}"] * bool(f) + [f"{p.count()} purged here: {p}"] * bool(p))
             or "none" for r, (f, p) in found.items()}
    bad = [r for r, (f, p) in found.items() if f or p]
    return [CheckResult("errant GTIDs (on one side only, never to replicate)", shown["source"], shown["aurora"],
                        "fail" if bad else "pass",
                        "" if not bad else f"on {', '.join(bad)}: find what wrote them (the binary log at those "
                        "GTIDs); if the other side must not have them, commit an empty transaction for each "
                        "there (the troubleshooting notebook's skip); if it must, repair the data first")]


def guardrails(rb: Session, move: Move, *, lag_limit_s: float = 1.0, write_window: float = 5.0,
               catch_up_timeout: float = 60.0, split_brain: SplitBrainReport | None = None,
               chunk_rows: int = 10_000) -> Checks:
    """Every guardrail of a switch, as one table (reads only).  ``.show()`` it, ``.require()`` it."""
    srv = {r: channels.server(rb, r) for r in SIDES}
    behind = [_seconds_behind(rb)]
    started = time.monotonic()
    checks = check_before(rb, move, write_window=write_window, catch_up_timeout=catch_up_timeout,
                          split_brain=split_brain, chunk_rows=chunk_rows)
    behind.append(_seconds_behind(rb))
    catch_up = _catch_up_seconds(rb, min(catch_up_timeout, max(lag_limit_s * 2, 5.0)))
    behind.append(_seconds_behind(rb))
    front = lag_rows(behind, catch_up, lag_limit_s) + [way_back_row(rb, move)] + errant_rows(srv)
    settings = [replace(r, item=f"setting: {r.item}") for r in setting_rows(rb)]
    print(f"guardrails read in {time.monotonic() - started:.1f} s")
    return replace(checks, results=tuple(front) + checks.results + tuple(settings))
