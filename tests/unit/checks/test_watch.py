"""runbook_lib.checks.watch, pure parts: a snapshot from what the servers answered, the alerts and their
reasons, the episodes a failover leaves, and the panels."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from runbook_lib.checks.channels import TO_AURORA, TO_SOURCE
from runbook_lib.checks.watch.result import WatchResult, episodes
from runbook_lib.checks.watch.sampling import SideRead, Thresholds, cloudwatch_note, snapshot
from runbook_lib.checks.watch.view import figure, panel_html, panel_text
from runbook_lib.core.errors import ParameterError
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.status import ReplicaStatus

S, A = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "4e11fa47-71ca-11e1-9e33-c80aa9429563"
AT = datetime(2026, 12, 6, 7, 0, tzinfo=timezone.utc)
LIMITS = Thresholds(lag_s=1.0, gtid_gap=100)


def status(**changes) -> ReplicaStatus:
    import dataclasses
    base = ReplicaStatus.from_row({"Channel_Name": "", "Source_Host": "127.0.0.1", "Source_Port": 3306,
                                   "Source_User": "replicator", "Source_UUID": S, "Source_Server_Id": 1,
                                   "Replica_IO_Running": "Yes", "Replica_SQL_Running": "Yes",
                                   "Replica_IO_State": "", "Replica_SQL_Running_State": "",
                                   "Last_IO_Errno": 0, "Last_IO_Error": "", "Last_IO_Error_Timestamp": "",
                                   "Last_SQL_Errno": 0, "Last_SQL_Error": "", "Last_SQL_Error_Timestamp": "",
                                   "Seconds_Behind_Source": 0, "Retrieved_Gtid_Set": "", "Executed_Gtid_Set": "",
                                   "Auto_Position": 1, "Connect_Retry": 2, "Source_SSL_Allowed": "Yes"})
    return dataclasses.replace(base, **changes)


def reads(source_n: int = 10, aurora_n: int = 10, *, aurora_up: bool = True, **aurora_channel) -> dict:
    both = lambda s, a: GtidSet(f"{S}:1-{s},{A}:1-{a}")      # noqa: E731
    return {"source": SideRead("source", True, "", both(source_n, 5), status()),
            "aurora": SideRead("aurora", True, "", both(aurora_n, 5), status(**aurora_channel)) if aurora_up
            else SideRead("aurora", False, "[aurora] cannot connect to 127.0.0.1:3307: connection refused")}


def snap(t: float, previous=None, lags=None, cloudwatch=(0.0, AT), **kw):
    return snapshot(t, AT, reads(**kw), previous, lags or {}, cloudwatch, LIMITS)


def test_a_healthy_pair_has_no_alert_and_counts_transactions_per_second():
    first = snap(0.0)
    second = snap(2.0, first, source_n=30, aurora_n=30, lags={TO_AURORA: 0.004, TO_SOURCE: 0.006})
    assert first.ok and second.ok
    assert first.side("source").tps is None                       # no previous tick yet
    assert second.side("source").tps == 10.0 and second.side("aurora").tps == 10.0
    assert second.direction(TO_AURORA).heartbeat_lag_s == 0.004
    assert second.direction(TO_AURORA).gtid_gap == 0 and second.direction(TO_SOURCE).gtid_gap == 0


def test_the_gtid_gap_counts_what_each_replica_lacks_of_its_writer():
    s = snap(0.0, source_n=500, aurora_n=10)
    assert s.direction(TO_AURORA).gtid_gap == 490                  # Aurora lacks 490 of the source's
    assert s.direction(TO_SOURCE).gtid_gap == 0
    assert any("aurora lacks 490 transactions of source (> 100)" in a for a in s.alerts)


def test_a_server_that_does_not_answer_turns_red_with_the_reason():
    s = snap(0.0, aurora_up=False)
    assert s.alerts[0].startswith("aurora does not answer: [aurora] cannot connect")
    assert s.direction(TO_AURORA).io == "?"                        # read on aurora: unknown
    assert s.direction(TO_AURORA).gtid_gap is None
    assert len(s.alerts) == 1                                      # said once, not per direction


def test_a_stopped_thread_and_its_error_are_named():
    s = snap(0.0, io_running="Connecting", last_io_errno=2003, last_io_error="Can't connect to MySQL server",
             seconds_behind=None)
    assert s.alerts == (f"{TO_AURORA}: IO thread Connecting, SQL thread Yes (IO 2003: Can't connect to MySQL server)",)


def test_lag_over_the_threshold_names_the_figure_heartbeat_first():
    s = snap(0.0, lags={TO_SOURCE: 2.5}, seconds_behind=3)
    assert f"{TO_SOURCE}: heartbeat lag 2.50 s > 1 s" in s.alerts
    assert f"{TO_AURORA}: Seconds_Behind_Source 3 s > 1 s" in s.alerts


def test_cloudwatch_is_shown_with_what_it_says_but_does_not_turn_the_line_red():
    """A per-minute maximum trails the live figures: it would keep the line red after a recovery."""
    for value in (-1.0, 2.0):
        assert snap(0.0, cloudwatch=(value, AT)).ok
    assert cloudwatch_note(-1.0, LIMITS) == "Aurora reported its replication not running in that minute"
    assert cloudwatch_note(2.0, LIMITS) == "over 1 s in that minute" and cloudwatch_note(0.0, LIMITS) == ""
    text = panel_text(snap(0.0, cloudwatch=(-1.0, AT)), 30, LIMITS)
    assert "AuroraBinlogReplicaLag: -1 s (maximum of the minute from 07:00 UTC" in text
    assert text.endswith("Aurora reported its replication not running in that minute\nOK: both directions run, "
                         "every figure under its threshold")


def test_a_failover_is_one_episode_from_the_outage_to_the_recovery():
    taken, previous = [], None
    for t, up in ((0, True), (1, True), (2, False), (3, False), (4, True), (5, True)):
        previous = snap(float(t), previous, aurora_up=up, lags={TO_AURORA: 0.01 if up else 1.5 + t})
        taken.append(previous)
    (episode,) = episodes(taken)
    assert (episode.start_s, episode.end_s, episode.seconds) == (2.0, 4.0, 2.0)
    # one reason per kind: the lag's growing figure is not repeated
    assert sum("heartbeat lag" in r for r in episode.reasons) == 1
    assert episode.reasons[0].startswith("aurora does not answer")
    result = WatchResult(tuple(taken), LIMITS, 5.0, False)
    assert result.verdict_line().startswith("ALERT: 1 period(s) over a threshold")
    assert list(result.episodes_frame()["end_s"]) == [4.0]
    summary = result.summary_frame().set_index("direction")
    assert summary.loc[TO_AURORA, "threads_not_running"] == 2 and summary.loc[TO_AURORA, "heartbeat_max_s"] == 4.5
    assert result.figures()["episodes"][0]["start_s"] == 2.0


def test_an_episode_still_red_at_the_end_has_no_end():
    taken = [snap(0.0), snap(1.0, aurora_up=False)]
    assert [(e.start_s, e.end_s) for e in episodes(taken)] == [(1.0, None)]
    assert "still red at the end" in WatchResult(tuple(taken), LIMITS, 1.0, True).verdict_line()


def test_panels_show_the_alert_line_red_and_escape_server_text():
    s = snap(0.0, aurora_up=False)
    page = panel_html(s, 30, LIMITS, ["no heartbeat table"])
    assert "background:#c62828" in page and "ALERT: aurora does not answer" in page and "no heartbeat table" in page
    text = panel_text(s, 30, LIMITS, colour=True)
    assert "\x1b[1;41;97mALERT: aurora does not answer" in text
    quoted = snap(0.0, last_sql_errno=1062, last_sql_error="Duplicate entry '<b>' for key", sql_running="No")
    assert "Duplicate entry &#x27;&lt;b&gt;&#x27;" in panel_html(quoted, 30, LIMITS)
    assert "background:#2e7d32" in panel_html(snap(0.0), 30, LIMITS)


def test_the_plot_has_three_labelled_panels():
    taken, previous = [], None
    for t in range(4):
        previous = snap(float(t), previous, source_n=10 + 5 * t, aurora_n=10 + 5 * t, lags={TO_AURORA: 0.01})
        taken.append(previous)
    axes = figure(WatchResult(tuple(taken), LIMITS, 3.0, False)).axes
    assert [ax.get_ylabel() for ax in axes] == ["lag (s)", "GTID gap (transactions)", "transactions / s"]


def test_thresholds_reject_nonsense():
    with pytest.raises(ParameterError):
        Thresholds(lag_s=0)
    with pytest.raises(ParameterError):
        Thresholds(gtid_gap="many")

