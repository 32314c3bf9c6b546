"""The failover test's pure parts: error kinds, sequence ranges, convergence and recovery
arithmetic, settings checks, the result's table, JSON round trip and plots."""
from __future__ import annotations

import io
import json

import pymysql
import pytest

from runbook_lib.core.errors import CheckFailed, ParameterError
from runbook_lib.mysql.connection import Endpoint, map_error
from runbook_lib.phases.failover_test import load as fl
from runbook_lib.phases.failover_test import plots as failover_plots
from runbook_lib.phases.failover_test.result import FailoverResult, LagPoint, Sample, Settings

EP = Endpoint("aurora", "127.0.0.1", 3306, "admin")
U1, U2 = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4f22ab58-82db-22f2-8f44-d91bb0530673"


# --- error kinds ----------------------------------------------------------------------------------

@pytest.mark.parametrize("exc, statement, kind, errno", [
    (pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1' ([Errno 111] "
                                        "Connection refused)"), "", "connection", 2003),
    (pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"), "COMMIT",
     "connection", 2013),
    (pymysql.err.OperationalError(2006, "MySQL server has gone away"), "BEGIN", "connection", 2006),
    (pymysql.err.InterfaceError(0, ""), "COMMIT", "connection", 0),
    (pymysql.err.OperationalError(1290, "The MySQL server is running with the --super-read-only option so "
                                        "it cannot execute this statement"), "INSERT ...", "read_only", 1290),
    (pymysql.err.OperationalError(1836, "Running in read-only mode"), "INSERT ...", "read_only", 1836),
    (pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock"), "INSERT ...", "other",
     1213),
])
def test_mapped_errors_keep_their_number_and_kind(exc, statement, kind, errno):
    mapped = map_error(exc, EP, statement)
    try:
        raise mapped from exc
    except Exception as e:  # noqa: BLE001 - the test inspects it
        event = fl._event(1.5, "aurora writer", e, "commit")
    assert (event.errno, event.kind) == (errno, kind)
    assert "while running" not in event.detail and len(event.detail) <= 200


def test_error_kind_by_number():
    assert [fl.error_kind(n) for n in (2003, 2013, 1053, 1290, 1792, 1062, 0)] == \
        ["connection", "connection", "connection", "read_only", "read_only", "other", "other"]


# --- sequence ranges --------------------------------------------------------------------------------

def test_seq_ranges_merge_subtract_count():
    acked = fl.SeqRanges.of([(1001, 2000), (1, 1000), (3001, 4000)])
    assert acked.ranges == ((1, 2000), (3001, 4000)) and acked.count() == 3000
    present = fl.SeqRanges.of([(1, 1500), (1601, 2000), (3001, 3999)])
    missing = acked - present
    assert missing.ranges == ((1501, 1600), (4000, 4000)) and missing.count() == 101
    assert str(missing) == "1501-1600,4000"
    assert not (acked - acked) and str(fl.SeqRanges()) == "none"
    assert (fl.SeqRanges.of([(5, 10)]) - fl.SeqRanges.of([(1, 3), (12, 20)])).ranges == ((5, 10),)
    holes = fl.SeqRanges.of([(1, 10)]) - fl.SeqRanges.of([(1, 2), (4, 5), (9, 12)])
    assert holes.ranges == ((3, 3), (6, 8))


def test_acked_ranges_leave_out_unacknowledged_batches():
    batches = [fl.Batch("aurora", 1, 10, 0.0, 0.1), fl.Batch("aurora", 11, 20, 1.0, None),
               fl.Batch("source", 1, 10, 0.0, 0.1)]
    assert fl.acked_ranges(batches, "aurora").ranges == ((1, 10),)


# --- convergence and recovery -------------------------------------------------------------------------

def _round(t, s, a, sn=1, an=1):
    return fl.Round(t, t - 0.01, sn, s, t, an, a)


def test_caught_up_needs_each_side_to_hold_the_others_previous_set():
    rounds = [_round(0.0, f"{U1}:1-5", f"{U2}:1-3"),
              _round(0.5, f"{U1}:1-6,{U2}:1-3", f"{U1}:1-5,{U2}:1-4"),      # both hold the other's round 0
              _round(1.0, f"{U1}:1-7,{U2}:1-3", f"{U1}:1-6,{U2}:1-5"),      # source lacks aurora's U2:4
              _round(1.5, None, f"{U1}:1-7,{U2}:1-5"),                      # source did not answer
              _round(2.0, f"{U1}:1-7,{U2}:1-5", f"{U1}:1-7,{U2}:1-5"),      # previous round had a gap
              _round(2.5, f"{U1}:1-7,{U2}:1-5", f"{U1}:1-7,{U2}:1-5")]
    assert fl.caught_up(rounds) == [False, True, False, False, False, True]
    assert fl.convergence_time(rounds, since=0.2) == 0.5                 # caught up again in round 1
    assert fl.convergence_time(rounds, since=0.7) == 2.5                 # after the recovery at 0.7 s
    assert fl.convergence_time(rounds[:3], since=0.2) is None            # the last round was not caught up


def test_convergence_time_counts_only_rounds_after_the_recovery():
    same = f"{U1}:1-5,{U2}:1-5"
    rounds = [_round(t / 2, same, same) for t in range(6)]
    assert fl.convergence_time(rounds, since=1.2) == 1.5
    assert fl.convergence_time(rounds, since=3.0) is None


def test_recovery_is_the_first_ack_after_the_first_aurora_error():
    batches = [fl.Batch("aurora", 1, 10, 9.9, 10.05),            # in flight at the request, committed
               fl.Batch("aurora", 11, 20, 10.2, 14.3, attempts=9, in_doubt=True),
               fl.Batch("aurora", 21, 30, 14.3, 14.35), fl.Batch("source", 1, 10, 10.1, 10.2)]
    events = [fl.ErrorEvent(10.2, "aurora writer", "connection", 2003, "connect", "refused"),
              fl.ErrorEvent(12.0, "aurora writer", "read_only", 1290, "insert", "read only"),
              fl.ErrorEvent(9.0, "aurora writer", "other", 1213, "insert", "before the request")]
    assert fl.recovery_time(batches, events, since=10.0) == 14.3
    assert fl.recovery_time(batches, [], since=10.0) == 10.05       # an outage the writer never saw
    assert fl.recovery_time(batches[:1], events, since=10.0) is None


# --- the writer's statement -------------------------------------------------------------------------

def test_insert_is_idempotent_and_numbers_each_row():
    w = fl.Writer("source", EP, "pw", 7, batch_rows=3, interval=1, batches=1, give_up_at=2,
                  clock=fl.Clock(__import__("threading").Event()))
    sql = w.insert_sql(4, 6)
    assert sql.startswith(f"INSERT INTO {fl.ROWS_TABLE} (run_id, origin, seq, payload) VALUES (7,'source',4,")
    assert sql.count("(7,'source',") == 3 and "(7,'source',6," in sql
    assert sql.endswith("ON DUPLICATE KEY UPDATE seq = seq")


# --- settings ---------------------------------------------------------------------------------------

def test_settings_defaults_are_the_blogs_and_bad_values_name_the_knob():
    s = Settings()
    assert (s.batch_rows, s.interval_seconds, s.rate) == (1000, 2.0, 500.0)
    assert (s.batches, s.schedule_seconds) == (30, 60.0)                   # batches at 0, 2, ... 58 s
    odd = Settings(duration_seconds=15, failover_at_seconds=5)
    assert (odd.batches, odd.schedule_seconds) == (8, 16.0)                # 0, 2, ... 14 s: 500 rows/s
    assert Settings(interval_seconds=0.2, duration_seconds=15, failover_at_seconds=5).batches == 75
    with pytest.raises(ParameterError, match="failover_at_seconds"):
        Settings(duration_seconds=10, failover_at_seconds=10)
    with pytest.raises(ParameterError, match="sample_hz"):
        Settings(sample_hz=1)
    with pytest.raises(ParameterError, match="batch_rows"):
        Settings(batch_rows=10.5)
    with pytest.raises(ParameterError, match="interval_seconds"):
        Settings(interval_seconds="2")


# --- the result -------------------------------------------------------------------------------------

def result(**changes) -> FailoverResult:
    batches = tuple(fl.Batch(side, 1 + 1000 * k, 1000 * (k + 1), 2.0 * k, 2.0 * k + 0.05)
                    for side in fl.SIDES for k in range(10))
    events = (fl.ErrorEvent(5.1, "aurora writer", "connection", 2003, "connect", "refused"),
              fl.ErrorEvent(6.5, "aurora writer", "read_only", 1290, "insert", "read only"),
              fl.ErrorEvent(5.2, "aurora sampler", "connection", 2013, "sample", "lost"))
    samples = tuple(Sample(t / 4 + 0.01, t / 4, int(t * 250), t / 4 + 0.01,
                           None if 21 <= t <= 26 else int(t * 240), t > 30) for t in range(0, 84))
    lag = tuple(LagPoint(t / 4, "source → aurora", None if 21 <= t <= 26 else 0.01) for t in range(80)) + \
        tuple(LagPoint(float(t), "AuroraBinlogReplicaLag (CloudWatch)", 0.0) for t in range(20))
    base = dict(run_id=4, started_at="2025-01-01T00:00:00.000+00:00",
                settings=Settings(duration_seconds=20, failover_at_seconds=5), cluster_id="runbook-aurora",
                writer_before="runbook-aurora-1", target="runbook-aurora-2", writer_after="runbook-aurora-2",
                requested_at=5.0, recovered_at=7.2, converged_at=8.0, writers_stopped_at=20.0,
                acked_rows={"source": 10000, "aurora": 10000}, rows_lost={"source": 0, "aurora": 0},
                missing={"source": "", "aurora": ""}, counts={"source": 20000, "aurora": 20000},
                checksums="match", write_rate={"source": 500.0, "aurora": 498.0},
                auto_increment={"source": (2, 2), "aurora": (2, 1)}, misplaced_ids=0,
                in_doubt={"source": 0, "aurora": 1}, batches=batches, events=events, samples=samples, lag=lag,
                cluster=(fl.ClusterPoint(1.0, "available", "runbook-aurora-1"),
                         fl.ClusterPoint(6.0, "failing-over", "runbook-aurora-2")))
    return FailoverResult(**{**base, **changes})


def test_result_table_and_verdict():
    r = result()
    frame = r.to_frame()
    assert list(frame.columns) == ["item", "source", "aurora", "ok", "advice"]
    assert set(frame["ok"]) <= {"✔", "ℹ"}
    assert r.verdict == "converged" and (r.recovery_seconds, r.convergence_seconds) == (2.2, 3.0)
    assert r.verdict_line().startswith("CONVERGED: run 4, failover of runbook-aurora to runbook-aurora-2 "
                                       "at 5.0 s")
    r.require_converged()
    assert r.errors_by_kind("aurora writer") == {"connection": 1, "read_only": 1, "other": 0}
    assert list(r.errors_frame().columns) == ["t (s)", "who", "kind", "errno", "during", "detail"]


def test_a_lost_row_fails_the_verdict_and_the_table_says_where():
    r = result(rows_lost={"source": 0, "aurora": 3}, missing={"source": "", "aurora": "source seq 17-19"},
               counts={"source": 20000, "aurora": 19997})
    assert r.verdict == "not converged"
    assert r.problems == ("3 acknowledged rows missing on aurora (source seq 17-19)",
                          "row counts differ: source 20,000, aurora 19,997")
    row = r.to_frame().set_index("item").loc["acknowledged rows missing on this side"]
    assert (row["aurora"], row["ok"]) == ("3", "✖") and "17-19" in row["advice"]
    with pytest.raises(CheckFailed, match="3 acknowledged rows missing"):
        r.require_converged()


def test_summary_has_the_run_summary_keys():
    s = result().summary()
    assert s["verdict"] == "converged"
    assert s["rows_lost"] == {"source": 0, "aurora": 0}
    assert set(s["write_rate_rows_per_s"]) == {"source", "aurora"}
    assert (s["recovery_seconds"], s["convergence_seconds"]) == (2.2, 3.0)
    json.dumps(s)


@pytest.mark.parametrize("changes, problem", [
    ({"checksums": "differ: 5..9 (changed, 5 row(s))"}, "checksums of runbook.failover_rows: differ"),
    ({"recovered_at": None}, "Aurora acknowledged no write after the failover"),
    ({"converged_at": None}, "both directions had not caught up 120 s after the writers stopped"),
    ({"writer_after": "runbook-aurora-1"}, "the cluster's writer is runbook-aurora-1, not the target"),
    ({"auto_increment": {"source": (2, 1), "aurora": (2, 1)}}, "auto-increment: 0 rows"),
    ({"misplaced_ids": 4}, "auto-increment: 4 rows with an id of the other side's offset"),
    ({"batches": (fl.Batch("aurora", 1, 10, 0.0, None),)}, "the aurora writer's batch 1-10 was never"),
])
def test_each_problem_fails_the_verdict(changes, problem):
    r = result(**changes)
    assert r.verdict == "not converged" and any(p.startswith(problem) for p in r.problems), r.problems
    assert "✖" in set(r.to_frame()["ok"]) or "batch" in problem


def test_a_run_that_did_not_converge_says_what_the_channels_reported():
    r = result(converged_at=None, channels=("aurora → source: IO Yes, SQL No; applier (SQL) error 1062: Duplicate",))
    assert any(p.endswith("the channels report: aurora → source: IO Yes, SQL No; applier (SQL) error 1062: "
                          "Duplicate") for p in r.problems), r.problems


def test_json_round_trip_is_exact():
    r = result(recovered_at=None, converged_at=None, channels=("source → aurora: IO Yes, SQL Yes; no error",))
    back = FailoverResult.from_json(r.to_json())
    assert back == r and back.verdict == "not converged" and back.recovery_seconds is None


# --- plots ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [failover_plots.counts_figure, failover_plots.lag_figure,
                                  failover_plots.errors_figure])
def test_plots_have_labelled_axes_with_units_and_render(make):
    for r in (result(), result(recovered_at=None, converged_at=None, events=(), lag=())):
        fig = make(r)
        ax = fig.axes[0]
        assert "(s)" in ax.get_xlabel()
        assert ax.get_ylabel() and ax.get_title()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        assert buffer.getvalue()[:4] == b"\x89PNG"
