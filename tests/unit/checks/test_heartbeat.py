"""Pure parts of runbook_lib.checks.heartbeat: what lag is reported between heartbeat arrivals, the
writer's record of committed heartbeats, the sample tables, option checks."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from runbook_lib.checks import heartbeat as hb
from runbook_lib.core.errors import ParameterError

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


def test_lag_is_the_last_arrival_while_nothing_is_waiting() -> None:
    assert hb.heartbeat_lag(0.012, None, now=100.0) == 0.012


def test_lag_grows_with_the_oldest_heartbeat_not_yet_seen() -> None:
    # a heartbeat committed at t=98.0 has not arrived by t=100.5: at least 2.5 s behind
    assert hb.heartbeat_lag(0.012, 98.0, now=100.5) == pytest.approx(2.5)
    # one committed 5 ms ago and not seen yet does not hide the last arrival's 12 ms
    assert hb.heartbeat_lag(0.012, 100.495, now=100.5) == 0.012
    # nothing arrived yet in this run: only the waiting time is known
    assert hb.heartbeat_lag(None, 99.0, now=100.0) == pytest.approx(1.0)
    assert hb.heartbeat_lag(None, None, now=100.0) is None


def test_written_finds_the_oldest_heartbeat_after_one_seen() -> None:
    w = hb._Written()
    for seq, at in ((100, 1.0), (101, 1.1), (102, 1.2)):
        w.add(seq, at)
    assert w.first_after(99) == 1.0
    assert w.first_after(100) == 1.1
    assert w.first_after(102) is None
    assert w.first_after(150) is None       # seen a newer one than recorded yet: caught up


def _samples() -> hb.LagSamples:
    rows = []
    for i in range(8):
        rows.append(hb.LagSample(T0 + timedelta(seconds=i / 4), "source → aurora", 0.01 + i / 1000, 0, "running"))
        rows.append(hb.LagSample(T0 + timedelta(seconds=i / 4), "aurora → source", 0.5 * i,
                                 None if i > 3 else 0, "stopped" if i > 3 else "running"))
    return hb.LagSamples(tuple(rows), ("source → aurora", "aurora → source"), 2.0, 0.1, 0.01)


def test_samples_frame_and_stats() -> None:
    s = _samples()
    frame = s.to_frame()
    assert list(frame.columns) == hb.SAMPLE_COLUMNS
    assert len(frame) == 16 and frame["seconds_behind"].isna().sum() == 4
    stats = s.stats().set_index("direction")
    assert stats.loc["source → aurora", "samples"] == 8
    assert stats.loc["source → aurora", "heartbeat_max_s"] == pytest.approx(0.017)
    assert stats.loc["aurora → source", "heartbeat_max_s"] == pytest.approx(3.5)
    assert stats.loc["aurora → source", "seconds_behind_null"] == 4
    assert stats.loc["aurora → source", "seconds_behind_max"] == 0


def test_stats_of_a_direction_without_heartbeats() -> None:
    s = hb.LagSamples((hb.LagSample(T0, "source → aurora", None, None, "no channel"),),
                      ("source → aurora",), 1.0, 0.1, 0.01)
    row = s.stats().iloc[0]
    assert row["heartbeat_p50_s"] is None and row["seconds_behind_max"] is None


def test_metric_series_frame() -> None:
    m = hb.MetricSeries("AuroraBinlogReplicaLag", "DBInstanceIdentifier", "w-1", 60, ((T0, 0.0), (T0, -1.0)))
    assert m.to_frame().to_dict("records") == [{"time": T0, "value_s": 0.0}, {"time": T0, "value_s": -1.0}]


def _side(role: str) -> hb.Side:
    def never() -> None:
        raise AssertionError("no connection may be opened")
    return hb.Side(role, role, never)


@pytest.mark.parametrize("kw", [{"sample_interval": 0.6}, {"sample_interval": 0.01}, {"write_interval": 0.0},
                                {"poll_interval": 2}])
def test_monitor_options_are_checked(kw) -> None:
    with pytest.raises(ParameterError):
        hb.HeartbeatMonitor(_side("source"), _side("aurora"), **kw)


@pytest.mark.parametrize("seconds", [0, -1, 601, "10"])
def test_a_window_is_bounded(seconds) -> None:
    monitor = hb.HeartbeatMonitor(_side("source"), _side("aurora"))
    assert monitor.directions == ("source → aurora", "aurora → source")
    with pytest.raises(ParameterError):
        monitor.start(seconds)
    assert not monitor.running


def test_metric_series_label_names_the_writer_role_series() -> None:
    assert hb.MetricSeries("AuroraBinlogReplicaLag", hb.WRITER_ROLE, "c1", 60, ()).label == \
        "DBClusterIdentifier=c1, Role=WRITER"
    assert hb.MetricSeries("AuroraBinlogReplicaLag", "DBInstanceIdentifier", "db-2", 60, ()).label == \
        "DBInstanceIdentifier=db-2"


def test_the_heartbeat_is_keyed_by_side_not_server_id() -> None:
    assert "side VARCHAR(16) NOT NULL PRIMARY KEY" in hb.TABLE_DDL
    assert "WHERE side = %s" in hb.READ_SQL and hb.WRITE_SQL.count("%s") == 3
