"""The live view (runbook_lib.checks.watch) on two real MySQL 9.7 servers replicating both ways (the
'<RUNBOOK_TEST_LAB>-bidir' lab, shared with the consistency and heartbeat modules, whose last module this
is): a failover of the lab's Aurora cluster during a watch shows the outage and the recovery within a
second of their happening, and a watch that ends (its time, or an interrupt) leaves nothing running."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

import pymysql
import pytest

from runbook_lib.checks import heartbeat
from runbook_lib.checks.channels import TO_AURORA, TO_SOURCE
from runbook_lib.checks.watch.result import WatchResult
from runbook_lib.checks.watch.sampling import Thresholds, Watch
from runbook_lib.context import session
from tests.support import query, replica_running, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.slow]

CLUSTER, READER = "runbook-aurora", "runbook-aurora-2"      # as in bench / parameters/lab.yaml
INTERVAL = 1.0                                              # the live view refreshes once a second
TICK_SLACK = 0.3      # reading both servers at a tick: the state shown is at most INTERVAL + this old


@pytest.fixture(scope="module")
def params(two_way, tmp_path_factory):
    path = two_way.params_file(tmp_path_factory.mktemp("watch") / "lab.yaml")
    with session.open_session(path, [], quiet=True) as rb:
        if not heartbeat.table_state(rb.source())[1]:
            heartbeat.create_table(rb)
    return path


def runbook_connections(two_way) -> int:
    """Sessions of the runbook's own accounts (the watch's and its heartbeat's) on both servers."""
    return sum(int(query(two_way.instances[side], "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST "
                                                  "WHERE USER IN ('dba', 'admin')")[0]["n"])
               for side in ("onprem", "aurora"))


def watch_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("heartbeat-")]


class Probe(threading.Thread):
    """Connects to the aurora server every 20 ms: when it stopped answering, and when it answered again
    (each the start of the first attempt that found it so)."""

    def __init__(self, port: int) -> None:
        super().__init__(name="probe", daemon=True)
        self.port, self.down_at, self.up_at, self.done = port, None, None, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            began = datetime.now(timezone.utc)     # a server starting up may hold an attempt until its timeout
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="nobody", password="x", connect_timeout=0.2)
            except pymysql.err.OperationalError as e:
                answered = e.args[0] == 1045               # access denied: the server answers
            else:
                answered = True
            if not answered and self.down_at is None:
                self.down_at = began
            if answered and self.down_at is not None and self.up_at is None:
                self.up_at = began
            self.done.wait(0.02)


def test_a_watch_that_ends_or_is_interrupted_leaves_nothing_running(two_way, params):
    before = runbook_connections(two_way)
    with session.open_session(params, [], quiet=True) as rb:
        watch = Watch(rb, limits=Thresholds(lag_s=1.0), interval=INTERVAL)
        snaps = watch.run(2)
        assert [round(s.t) for s in snaps] == [0, 1, 2] and all(s.ok for s in snaps), [s.alerts for s in snaps]
        assert all(s.cloudwatch_lag_s is not None for s in snaps)    # the lab endpoint publishes it
        assert all(s.direction(d).heartbeat_lag_s is not None for s in snaps[1:] for d in (TO_AURORA, TO_SOURCE))
        assert snaps[-1].side("source").tps > 0                  # the heartbeats are transactions

        def interrupt(s):
            if s.t >= 1:
                raise KeyboardInterrupt
        stopped = Watch(rb, interval=INTERVAL)
        taken = stopped.run(30, interrupt)
        assert stopped.interrupted and len(taken) == 2
    assert watch_threads() == []
    wait_for("the watch's sessions to end on both servers", lambda: runbook_connections(two_way) <= before, 5)


def test_a_failover_during_a_watch_shows_the_outage_and_its_recovery_within_a_second(two_way, params):
    rds = two_way.aws("rds")
    members = rds.describe_db_clusters(DBClusterIdentifier=CLUSTER)["DBClusters"][0]["DBClusterMembers"]
    if READER not in {m["DBInstanceIdentifier"] for m in members}:
        rds.create_db_instance(DBInstanceIdentifier=READER, DBClusterIdentifier=CLUSTER, Engine="aurora-mysql",
                               DBInstanceClass="db.r6g.large")
    probe = Probe(two_way.instances["aurora"].port)
    probe.start()
    failover = threading.Timer(3.0, lambda: rds.failover_db_cluster(DBClusterIdentifier=CLUSTER,
                                                                    TargetDBInstanceIdentifier=READER))
    try:
        with session.open_session(params, [], quiet=True) as rb:
            watch = Watch(rb, limits=Thresholds(lag_s=1.0), interval=INTERVAL)
            failover.start()
            snaps = watch.run(16)
    finally:
        failover.cancel()
        probe.done.set()
        probe.join()
    result = WatchResult(tuple(snaps), watch.limits, 16, watch.interrupted, tuple(watch.notes))
    print(result.episodes_frame().to_string(), f"\ndown {probe.down_at} up {probe.up_at}")
    assert probe.down_at is not None and probe.up_at is not None, "the lab's failover did not stop aurora"
    first_red = next(s for s in snaps if not s.side("aurora").reachable)
    back = next(s for s in snaps if s.at > first_red.at and s.side("aurora").reachable)
    print(f"outage shown {(first_red.at - probe.down_at).total_seconds():.3f} s after it began, recovery "
          f"{(back.at - probe.up_at).total_seconds():.3f} s after aurora answered again")
    # the watch may meet the outage a few ms before the probe (a query cut off as the server dies)
    assert -0.1 <= (first_red.at - probe.down_at).total_seconds() <= INTERVAL + TICK_SLACK
    assert -0.1 <= (back.at - probe.up_at).total_seconds() <= INTERVAL + TICK_SLACK
    assert first_red.alerts[0].startswith("aurora does not answer")
    # one red period, from the outage until both directions run again; green at the end
    (episode,) = result.episodes()
    assert episode.start_s == first_red.t and episode.end_s is not None and episode.end_s >= back.t
    assert snaps[-1].ok and result.verdict_line().startswith("ALERT: 1 period(s)")
    assert all(s.direction(TO_AURORA).io == "?" for s in snaps if not s.side("aurora").reachable)
    wait_for("both directions running again", lambda: all(replica_running(i) for i in two_way.instances.values()), 30)
    assert watch_threads() == []
