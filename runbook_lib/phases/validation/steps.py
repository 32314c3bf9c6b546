"""Phase 6: does the bi-directional replication hold?  Both directions, errors, lag, same data.

* :func:`show_directions`: both directions side by side with checks and a verdict (phase 5's
  :func:`runbook_lib.checks.channels.show_directions`); stops with NotApplied / ReplicationError when a
  channel is missing or does not run.
* :func:`error_checks`: every error either replica keeps (SHOW REPLICA STATUS, and the applier
  workers in performance_schema), one row each.
* :func:`sample_lag` (the heartbeat of :mod:`runbook_lib.checks.heartbeat`, a short window), :func:`lag_checks`,
  :func:`lag_figure` (each direction's heartbeat lag with Seconds_Behind_Source beside it, a threshold
  line, and CloudWatch's AuroraBinlogReplicaLag).
* :func:`compare_data`: a full consistency pass over ``app_schemas`` and ``runbook``
  (:func:`runbook_lib.checks.consistency.scan.full_check`: chunks sized by time, optionally throttled on
  lag, resumable), recorded in ``runbook.consistency_run`` / ``_chunk``: phase 8's "same data" gate
  re-verifies only what was written since (:mod:`runbook_lib.checks.consistency.changes`).
* :func:`record` / :func:`conclude`: figures for the run summary; CheckFailed if anything failed.

Reads only, except the heartbeat (its table, created once, step ``replication``, and its rows, written
a few times a second on each side while lag is sampled or the comparison is throttled) and the
comparison's ledger (``runbook.consistency_run`` / ``_chunk``, created when missing, written on the
source: its progress and verdict).
"""
from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import pandas as pd

from runbook_lib.checks import channels, heartbeat
from runbook_lib.checks.consistency import changes, scan
from runbook_lib.checks.consistency.comparison import Comparison
from runbook_lib.checks.consistency.ledger import REVERIFY
from runbook_lib.checks.consistency.throttle import Throttle
from runbook_lib.checks.heartbeat import LagSamples, MetricSeries
from runbook_lib.core import record as run_record
from runbook_lib.core.display import CheckResult, raise_if_failed, show, show_checks, show_table, verdict
from runbook_lib.core.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from runbook_lib.context.session import Session
    from runbook_lib.core.approval import Outcome
    from runbook_lib.mysql.status import ReplicaStatus

RUNBOOK_SCHEMA = "runbook"
COLOURS = {channels.TO_AURORA: "#ff7f0e", channels.TO_SOURCE: "#1f77b4"}
_WORKER_ERRORS = """SELECT WORKER_ID AS worker, LAST_ERROR_NUMBER AS errno,
    LAST_ERROR_MESSAGE AS message, LAST_ERROR_TIMESTAMP AS at
  FROM performance_schema.replication_applier_status_by_worker WHERE LAST_ERROR_NUMBER <> 0"""


# --- the knobs ---------------------------------------------------------------------------------

# How the data comparison reads: a full pass (scan.MODES), or only what changed since the last one.
CHECK_MODES = (*scan.MODES, "reverify")

def check_knobs(*, lag_seconds: float, lag_threshold_s: float, heartbeat_interval_s: float, metric_minutes: float,
                metric_period_s: int, check_target_seconds: float, check_mode: str, check_lag_limit_s: float) -> None:
    """ParameterError naming the first bad notebook knob, before anything runs."""
    def number(name: str, value: object, low: float, high: float, integer: bool = False) -> None:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
            raise ParameterError(name, f"must be {'an integer' if integer else 'a number'} from {low:g} to "
                                       f"{high:g}, not {value!r}")
    number("lag_seconds", lag_seconds, 1, heartbeat.MAX_SECONDS)
    number("lag_threshold_s", lag_threshold_s, 0.001, 86400)
    number("heartbeat_interval_s", heartbeat_interval_s, 0.01, 5)
    number("metric_minutes", metric_minutes, 1, 1440)
    number("metric_period_s", metric_period_s, 1, 86400, integer=True)
    if metric_period_s not in (1, 5, 10, 30) and metric_period_s % 60:
        raise ParameterError("metric_period_s", f"{metric_period_s} is not a CloudWatch period",
                             hint="1, 5, 10, 30 or a multiple of 60 seconds")
    number("check_target_seconds", check_target_seconds, 0.01, 60)
    if check_mode not in CHECK_MODES:
        raise ParameterError("check_mode", f"{check_mode!r} is not one of {', '.join(CHECK_MODES)}",
                             hint="auto: continue an unfinished pass, else start anew; fresh: always anew; "
                                  "resume: the latest pass, even a finished one; reverify: only the rows "
                                  "written since the latest finished one")
    number("check_lag_limit_s", check_lag_limit_s, 0, 3600)


# --- both directions, errors ---------------------------------------------------------------------

def show_directions(rb: Session, settle: float = 5.0) -> dict[str, ReplicaStatus | None]:
    """Both directions side by side, checks, verdict; raises unless both run as the parameters say."""
    statuses = channels.directions(rb, settle=settle)
    channels.show_directions(rb, statuses)
    return statuses


def error_checks(rb: Session, statuses: Mapping[str, ReplicaStatus | None]) -> list[CheckResult]:
    """One row per error a replica keeps; 'warn' while the thread runs again (a past error)."""
    out = []
    for direction in channels.DIRECTIONS:
        role, status = channels.REPLICA_ROLE[direction], statuses.get(direction)
        found = [] if status is None else [
            (f"{t.upper()} thread", n, m, status.last_io_error_timestamp if t == "io" else
             status.last_sql_error_timestamp, (status.io_running if t == "io" else status.sql_running) == "Yes")
            for t, n, m in status.errors]
        for r in channels.server(rb, role).query(_WORKER_ERRORS):     # details the SQL thread's row lacks
            if all((int(r["errno"]), r["message"]) != (n, m) for _, n, m, _, _ in found):
                found.append((f"applier worker {r['worker']}", int(r["errno"]), r["message"], str(r["at"]),
                              bool(status and status.running)))
        for thread, errno, message, at, running in found:
            out.append(CheckResult(f"{direction}: {thread} error", **{role: f"{errno}: {message} (at {at})"},
                                   status="warn" if running else "fail",
                                   advice=("a past error: the thread runs again; find out why it happened"
                                           if running else channels.advice(direction, status))))
        if not found:
            out.append(CheckResult(f"{direction}: errors", **{role: "none"}, status="pass"))
    return out


def show_errors(rb: Session, statuses: Mapping[str, ReplicaStatus | None]) -> list[CheckResult]:
    results = error_checks(rb, statuses)
    show_checks(results, "replication errors")
    return results


# --- lag -----------------------------------------------------------------------------------------

def heartbeat_table(rb: Session) -> Outcome:
    """Plan (and apply if step 'replication' is approved) the heartbeat table runbook.heartbeat."""
    return heartbeat.ensure_table(rb)


def sample_lag(rb: Session, seconds: float, write_interval: float = 0.1) -> LagSamples:
    """Heartbeats on both sides for ``seconds``; the lag of each direction sampled at 4 Hz."""
    monitor = heartbeat.HeartbeatMonitor.for_session(rb, write_interval=write_interval)
    return monitor.sample(seconds)


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)) else f"{seconds * 1000:.0f} ms"


def lag_checks(samples: LagSamples, threshold_s: float) -> list[CheckResult]:
    """Per direction: heartbeats arrive, their lag (p95) under the threshold, Seconds_Behind beside it."""
    stats = samples.stats().set_index("direction")
    out = []
    for direction in samples.directions:
        role, s = channels.REPLICA_ROLE.get(direction, "aurora"), stats.loc[direction]
        seen = s["heartbeat_p50_s"] is not None and not pd.isna(s["heartbeat_p50_s"])
        out.append(CheckResult(f"{direction}: heartbeats arrive", **{role: f"{s['samples']} samples"},
                               status="pass" if seen else "fail",
                               advice="" if seen else channels.advice(direction, None)))
        if seen:
            ok = s["heartbeat_p95_s"] <= threshold_s
            out.append(CheckResult(f"{direction}: heartbeat lag p95 (max) ≤ {threshold_s:g} s",
                                   **{role: f"{_ms(s['heartbeat_p95_s'])} (max {_ms(s['heartbeat_max_s'])}, "
                                            f"median {_ms(s['heartbeat_p50_s'])})"},
                                   status="pass" if ok else "fail",
                                   advice="" if ok else "the replica falls behind: look at its load, long "
                                                        "transactions and the network, then sample again"))
        nulls = int(s["seconds_behind_null"])
        out.append(CheckResult(f"{direction}: Seconds_Behind_Source max (1 s resolution)",
                               **{role: f"{s['seconds_behind_max']}" + (f", NULL in {nulls} samples" if nulls else "")},
                               status="warn" if nulls else "info",
                               advice="NULL: a replication thread was not running during the window" if nulls else ""))
    for error in samples.errors:
        out.append(CheckResult("heartbeat monitor", source=error, status="fail",
                               advice="a server did not answer during the window: see the replica status"))
    return out


def show_lag(samples: LagSamples, threshold_s: float) -> list[CheckResult]:
    """The per-direction statistics, the checks and their verdict."""
    show_table(samples.stats())
    results = lag_checks(samples, threshold_s)
    show_checks(results, f"replication lag over {samples.seconds:.0f} s")
    return results


def replica_lag_metric(rb: Session, minutes: float = 10, period_s: int = 60) -> MetricSeries:
    return heartbeat.replica_lag_metric(rb, minutes=minutes, period_s=period_s)


def lag_figure(samples: LagSamples, metric: MetricSeries, threshold_s: float) -> Figure:
    """One panel per direction (heartbeat lag in ms on a log scale, the threshold, Seconds_Behind_Source
    on a second axis in s), and CloudWatch's metric with the sampling window shaded."""
    from matplotlib.figure import Figure
    frame = samples.to_frame()
    fig = Figure(figsize=(11, 9), dpi=100, layout="constrained")
    axes = fig.subplots(3, 1)
    start = frame["time"].min() if len(frame) else pd.Timestamp.now(tz="UTC")
    top_ms = max([threshold_s * 1000, *(frame["heartbeat_lag_s"].dropna() * 1000)]) * 3
    for ax, direction in zip(axes, samples.directions):
        part = frame[frame["direction"] == direction]
        t = (part["time"] - start).dt.total_seconds()
        ax.plot(t, part["heartbeat_lag_s"] * 1000, color=COLOURS.get(direction, "#333333"), marker=".",
                linewidth=1.4, label=f"heartbeat lag (written every {samples.write_interval * 1000:.0f} ms)")
        ax.axhline(threshold_s * 1000, color="#d62728", linewidth=1, linestyle=":",
                   label=f"threshold {threshold_s:g} s")
        ax.set_yscale("log")
        ax.set_ylim(1, top_ms)
        ax.set_ylabel("heartbeat lag (ms, log scale)")
        ax.set_xlabel(f"time since {start:%H:%M:%S} UTC (s)")
        ax.set_title(f"replication lag {direction}, read on {channels.REPLICA_ROLE.get(direction, '?')}")
        right = ax.twinx()
        right.step(t, part["seconds_behind"], where="post", color="#555555", linestyle="--", linewidth=1,
                   label="Seconds_Behind_Source (whole seconds)")
        nulls = t[part["seconds_behind"].isna()]
        right.plot(nulls, [0] * len(nulls), "x", color="#d62728", label="Seconds_Behind_Source NULL")
        right.set_ylim(0, max(2.0, part["seconds_behind"].max(skipna=True) * 1.2 if part["seconds_behind"].notna().any()
                              else 2.0))
        right.set_ylabel("Seconds_Behind_Source (s)")
        lines = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
        ax.grid(True, alpha=0.3)
    ax = axes[2]
    points = metric.to_frame()
    if len(points):
        running = points[points["value_s"] >= 0]
        ax.plot(running["time"], running["value_s"], color=COLOURS[channels.TO_AURORA], marker="o", markersize=3,
                linewidth=1.2, label=f"{metric.metric} (Maximum per {metric.period_s} s)")
        stopped = points[points["value_s"] < 0]
        ax.plot(stopped["time"], [0] * len(stopped), "x", color="#d62728", label="-1: replication not running")
        ax.set_ylim(0, max(threshold_s, running["value_s"].max() if len(running) else 0) * 1.2)
    else:
        ax.text(0.5, 0.5, f"no {metric.metric} data points for {metric.resource}", ha="center", va="center",
                transform=ax.transAxes)
    if len(frame):
        ax.axvspan(frame["time"].min(), frame["time"].max(), color="#2ca02c", alpha=0.15,
                   label="heartbeat sampling window")
    ax.axhline(threshold_s, color="#d62728", linewidth=1, linestyle=":", label=f"threshold {threshold_s:g} s")
    ax.set_title(f"CloudWatch {metric.metric} ({metric.label}): source → aurora")
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel("lag (s)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    return fig


def show_figure(fig: Figure) -> None:
    """A figure as a PNG (kept by headless runs and HTML reports); its title as text otherwise."""
    from runbook_lib.core.display import in_ipython
    if not in_ipython():
        print(f"[figure: {'; '.join(ax.get_title() for ax in fig.axes)}]")
        return
    from IPython.display import Image, display
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    display(Image(data=buffer.getvalue(), format="png"))


# --- same data -----------------------------------------------------------------------------------

def schemas(rb: Session) -> list[str]:
    """What is compared: the application schemas and the runbook's own schema."""
    return list(dict.fromkeys([*rb.params.app_schemas, RUNBOOK_SCHEMA]))


def compare_data(rb: Session, *, target_seconds: float = 0.5, mode: str = "auto", lag_limit_s: float = 0.0,
                 wait_timeout: float = 60.0, progress: bool = True) -> Comparison:
    """A full pass over :func:`schemas`, recorded in the ledger (see :mod:`runbook_lib.checks.consistency.scan`):
    chunks of ``target_seconds`` on the slower side; ``mode`` auto / fresh / resume, or reverify (only the
    rows written since the latest finished pass, :func:`~runbook_lib.checks.consistency.changes.reverify`,
    recorded too); ``lag_limit_s`` above
    0: chunks wait while either direction's heartbeat lag is above it (a
    :class:`~runbook_lib.checks.heartbeat.HeartbeatMonitor` of the session, started by the throttle)."""
    throttle = (Throttle(lag_limit=lag_limit_s, monitor=heartbeat.HeartbeatMonitor.for_session(rb))
                if lag_limit_s else None)
    if mode == "reverify":      # only the rows written since the latest finished pass; recorded as the next
        return changes.reverify(rb.source(), rb.aurora(), schemas(rb), wait_timeout=wait_timeout,
                                progress=progress, target_seconds=target_seconds, throttle=throttle)
    return scan.full_check(rb.source(), rb.aurora(), schemas(rb), mode=mode, target_seconds=target_seconds,
                           throttle=throttle, wait_timeout=wait_timeout, progress=progress)


def show_comparison(comparison: Comparison) -> None:
    """The tables, the differing keys and column values, the pass (continued or new, throttled), the verdict."""
    show_table(comparison.to_frame())
    if len(comparison.ranges_frame()):
        show(comparison.ranges_frame())
    if len(comparison.samples_frame()):
        show(comparison.samples_frame())
    if comparison.kind == REVERIFY:
        print(f"re-verification {comparison.run_id[:8]} (recorded in runbook.consistency_run: the next one starts "
              f"here): {sum(r.compared for r in comparison.rounds):,} changed keys compared in "
              f"{len(comparison.rounds)} round(s), {comparison.seconds:.2f} s")
    else:
        print(f"pass {comparison.run_id[:8]} ({'continued' if comparison.resumed else 'new'}, recorded in "
              f"runbook.consistency_run): {comparison.seconds:.1f} s" +
              (f", {comparison.throttled_s:.1f} s of it paused by the lag throttle" if comparison.throttled_s
               else ""))
    print(comparison.verdict_line())


# --- the run summary -----------------------------------------------------------------------------

def lag_figures(samples: LagSamples, results: Iterable[CheckResult], threshold_s: float) -> dict:
    stats = samples.stats()
    return {"window_s": samples.seconds, "threshold_s": threshold_s, "write_interval_s": samples.write_interval,
            "directions": {r["direction"]: {k: (None if pd.isna(v) else v) for k, v in r.items() if k != "direction"}
                           for r in stats.to_dict("records")},
            "errors": list(samples.errors), "verdict": verdict(results, "replication lag")}


def record(lag: LagSamples, lag_results: list[CheckResult], comparison: Comparison, threshold_s: float) -> None:
    """``record('lag', ...)`` and ``record('consistency', ...)`` for the run summary."""
    run_record.record("lag", lag_figures(lag, lag_results, threshold_s))
    run_record.record("consistency", {**comparison.figures(), "kind": comparison.kind, "run_id": comparison.run_id,
                                      "resumed": comparison.resumed, "throttled_s": comparison.throttled_s})


def conclude(error_results: list[CheckResult], lag_results: list[CheckResult], comparison: Comparison) -> None:
    """CheckFailed (with its table) if a check failed or the sides hold different data."""
    raise_if_failed(error_results, "replication errors")
    raise_if_failed(lag_results, "replication lag")
    comparison.raise_if_differ()
    print("PASS: bi-directional replication validated: both directions run, lag under the threshold, "
          f"same data in {len(comparison.tables)} tables")

