"""runbook_lib.checks.heartbeat against two real MySQL 9.7 servers replicating both ways (lab instance
'<RUNBOOK_TEST_LAB>-bidir', set up by bench.replicated_lab), and the lab endpoint's CloudWatch."""
from __future__ import annotations

import statistics
import time

import pytest

from runbook_lib.checks import heartbeat
from runbook_lib.context import session
from runbook_lib.core.errors import NotApplied, RunbookError

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def rb(two_way, tmp_path_factory):
    s = session.open_session(two_way.params_file(tmp_path_factory.mktemp("hb") / "lab.yaml"), [], quiet=True)
    yield s
    s.close()


def monitor(two_way, **kw) -> heartbeat.HeartbeatMonitor:
    return heartbeat.HeartbeatMonitor(heartbeat.Side("source", "onprem", two_way.opener("onprem")),
                                      heartbeat.Side("aurora", "aurora", two_way.opener("aurora")), **kw)


def connections(two_way) -> int:
    with two_way.server("onprem") as a, two_way.server("aurora") as b:
        return sum(int(s.scalar("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'labroot'"))
                   for s in (a, b))


def test_without_the_table_nothing_runs_then_it_is_planned_and_created(two_way, rb) -> None:
    with two_way.server("onprem") as s:                 # the first layout, keyed by server_id
        s.execute("DROP TABLE IF EXISTS runbook.heartbeat")
        s.execute(heartbeat.SCHEMA_DDL)
        s.execute("CREATE TABLE runbook.heartbeat (server_id INT UNSIGNED NOT NULL PRIMARY KEY, "
                  "label VARCHAR(64) NOT NULL, ts DATETIME(6) NOT NULL, seq BIGINT UNSIGNED NOT NULL)")
    two_way.wait_caught_up()
    with pytest.raises(NotApplied) as e:
        monitor(two_way).start(2)
    assert e.value.step == "replication"
    plan = heartbeat.table_plan(rb)
    assert plan.step_id == "replication"
    assert [s.detail for s in plan.steps][-2:] == [heartbeat.OLD_TABLE_DROP, heartbeat.TABLE_DDL]
    heartbeat.create_table(rb)
    assert heartbeat.table_state(rb.source()) == (True, True)
    assert heartbeat.table_state(rb.aurora()) == (True, True)
    assert heartbeat.table_plan(rb).is_empty


def test_both_directions_are_sampled_and_everything_stops_by_itself(two_way) -> None:
    before = connections(two_way)
    m = monitor(two_way)
    started = time.monotonic()
    m.start(3)
    assert m.running and time.monotonic() - started < 3
    samples = m.wait()
    assert not m.running and time.monotonic() - started < 8
    frame = samples.to_frame()
    assert list(frame.columns) == heartbeat.SAMPLE_COLUMNS
    for direction in ("source → aurora", "aurora → source"):
        part = frame[frame["direction"] == direction]
        assert len(part) >= 2 * 3                       # at least 2 Hz
        lags = part["heartbeat_lag_s"].dropna()
        assert len(lags) >= len(part) - 1 and 0 <= lags.median() < 0.5
        assert (part["seconds_behind"].dropna() <= 1).all() and (part["replica_state"] == "running").all()
    assert samples.errors == ()
    with two_way.server("aurora") as s:                  # one row per origin, written during the window
        rows = s.query("SELECT side, server_id, label, seq FROM runbook.heartbeat ORDER BY side")
    assert [(r["side"], r["label"]) for r in rows] == [("aurora", "aurora"), ("source", "onprem")]
    assert connections(two_way) == before               # the monitor's four connections are closed


def test_a_stopped_direction_keeps_growing_while_seconds_behind_is_null(two_way) -> None:
    m = monitor(two_way).start(7)
    time.sleep(1.5)
    with two_way.server("aurora") as s:
        s.execute(s.dialect.stop_replication())
        time.sleep(3)
        s.execute(s.dialect.start_replication())
    frame = m.wait().to_frame()
    part = frame[frame["direction"] == "source → aurora"]
    stopped = part[part["replica_state"] == "stopped"]
    assert len(stopped) >= 8 and stopped["seconds_behind"].isna().all()
    lags = stopped["heartbeat_lag_s"].tolist()
    assert lags == sorted(lags) and lags[-1] > 2.0       # grows by the second
    assert part["heartbeat_lag_s"].iloc[-1] < 0.5         # and comes back after the restart
    other = frame[frame["direction"] == "aurora → source"]
    assert other["heartbeat_lag_s"].max() < 0.5           # the other direction never noticed


def test_stop_ends_a_long_window_early_and_one_window_at_a_time(two_way) -> None:
    m = monitor(two_way).start(120)
    with pytest.raises(RunbookError):
        m.start(5)
    time.sleep(1)
    started = time.monotonic()
    samples = m.stop()
    assert time.monotonic() - started < 3 and not m.running
    assert 4 <= len(samples.samples) <= 20


def test_a_known_extra_delay_is_measured(two_way) -> None:
    """aurora → source through a proxy that holds every byte 150 ms: the heartbeat says ~150 ms more;
    Seconds_Behind_Source (whole seconds, from timestamps rounded to the second) says 0 or 1."""
    from bench.lag import DelayProxy, _point_onprem_at
    proxy = DelayProxy(two_way.state.aurora_port)
    try:
        _point_onprem_at(two_way, proxy.port)
        two_way.wait_caught_up()
        base = monitor(two_way).sample(3).to_frame()
        proxy.delay_ms = 150
        time.sleep(0.5)
        delayed = monitor(two_way).sample(4).to_frame()
    finally:
        _point_onprem_at(two_way, two_way.state.aurora_port)
        proxy.close()
        two_way.wait_caught_up()

    def median_ms(frame):
        return statistics.median(frame[frame["direction"] == "aurora → source"]["heartbeat_lag_s"].dropna()) * 1000
    assert 110 < median_ms(delayed) - median_ms(base) < 200
    assert set(delayed["seconds_behind"].dropna()) <= {0.0, 1.0}


def test_cloudwatch_replica_lag_follows_the_real_replica(two_way, rb) -> None:
    series = heartbeat.replica_lag_metric(rb, minutes=5, period_s=1)
    assert series.dimension == heartbeat.WRITER_ROLE and series.resource == rb.params.aurora_cluster_id
    assert len(series.points) >= 5 and series.points[-1][1] == 0.0
    with two_way.server("aurora") as s:
        s.execute(s.dialect.stop_replication())
        time.sleep(3.5)
        s.execute(s.dialect.start_replication())
    values = heartbeat.replica_lag_metric(rb, minutes=1, period_s=1).to_frame()["value_s"].tolist()
    assert -1.0 in values[-8:]                              # published from the real status: not running
    time.sleep(2.5)
    assert heartbeat.replica_lag_metric(rb, minutes=1, period_s=1).points[-1][1] == 0.0
