"""The failover test against real servers: two-way GTID replication, a cluster with a writer and a
reader on the lab's AWS endpoint, and a real failover (the ``aurora`` server is killed, refuses
connections, answers read-only, then writes again).

The module builds a lab instance of its own (``<RUNBOOK_TEST_LAB>-failover``, ports
$RUNBOOK_TEST_PORT_BASE+3 .. +5): it turns GTIDs on, restarts and fails over the servers, which the
session's shared ``lab`` fixture must not see.  Replication is set up directly with labroot by
:func:`bench.replicated_lab` (GTIDs on, offsets 2/1, both channels, a 2 s connect retry on the
source side, a cluster record with its parameter group on the endpoint); this module adds the
reader instance the failover needs and the heartbeat table.
"""
from __future__ import annotations

import pytest

from runbook_lib.checks import heartbeat, splitbrain
from runbook_lib.context import session
from runbook_lib.core.display import CheckResult
from runbook_lib.core.errors import CheckFailed
from runbook_lib.phases.failover_test import load as fl
from runbook_lib.phases.failover_test import result as failover_result
from runbook_lib.phases.failover_test import steps as failover
from tests.support import (
    aws_client,
    keep,
    lab_name,
    params_variant,
    port_base,
    query,
    replica_running,
    wait_for,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

NAME = lab_name("failover")
BASE = port_base("failover")
CLUSTER, WRITER, READER = "runbook-aurora", "runbook-aurora-1", "runbook-aurora-2"    # as in lab.yaml
# 5,000 rows/s into each side for 15 s, the failover at 5 s
FAST = failover_result.Settings(batch_rows=1000, interval_seconds=0.2, duration_seconds=15, failover_at_seconds=5,
                         sample_hz=4, converge_timeout_seconds=60)


def add_reader(ctx) -> None:
    """The failover target: a reader instance in the lab's cluster record."""
    rds = ctx.aws("rds")
    members = rds.describe_db_clusters(DBClusterIdentifier=CLUSTER)["DBClusters"][0]["DBClusterMembers"]
    if READER not in {m["DBInstanceIdentifier"] for m in members}:
        rds.create_db_instance(DBInstanceIdentifier=READER, DBClusterIdentifier=CLUSTER,
                               Engine="aurora-mysql", DBInstanceClass="db.r6g.large")


@pytest.fixture(scope="module")
def flab(tmp_path_factory):
    """(state, servers, params file) of a lab with bi-directional replication and a 2-instance cluster."""
    from bench import replicated_lab, take_down
    ctx = replicated_lab(NAME, BASE, 1000, say=lambda *_: None)
    try:
        add_reader(ctx)
        params = ctx.params_file(tmp_path_factory.mktemp("failover") / "lab.yaml")
        with session.open_session(params, [], quiet=True) as rb:
            heartbeat.create_table(rb)
        yield ctx.state, ctx.instances, params
    finally:
        if not keep():
            take_down(ctx)


def writer_of(flab) -> str:
    rds = aws_client(flab[0].endpoint_url, "rds")
    members = rds.describe_db_clusters(DBClusterIdentifier=CLUSTER)["DBClusters"][0]["DBClusterMembers"]
    return next(m["DBInstanceIdentifier"] for m in members if m["IsClusterWriter"])


def test_readiness_passes_on_a_replicating_lab(flab):
    with session.open_session(flab[2], [], quiet=True) as rb:
        ready = failover.readiness(rb)
    failed = [(r.item, r.source, r.aurora, r.advice) for r in ready if r.status == "fail"]
    assert not failed
    assert any("failover target" in r.item and READER in str(r.aurora) for r in ready)


def test_without_approval_nothing_is_written_and_no_failover_happens(flab):
    _, servers, _ = flab
    with session.open_session(params_variant(flab[2], approvals=[]), [], quiet=True) as rb:
        test = failover.plan_test(rb, FAST, failover.readiness(rb))
        assert [s.action for s in test.plan.steps][-2] == "fail the Aurora cluster over"
        outcome = rb.gate.apply(test.plan, test.apply)
    assert outcome.status == "skipped"
    for inst in servers.values():
        assert not query(inst, "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'runbook' "
                               "AND TABLE_NAME IN ('failover_rows', 'failover_runs')")
    assert writer_of(flab) == WRITER


@pytest.fixture(scope="module")
def before(flab) -> dict:
    """Aurora's server_id and server_uuid before the test's failover."""
    return query(flab[1]["aurora"], "SELECT @@server_id AS id, @@server_uuid AS uuid")[0]


@pytest.fixture(scope="module")
def ran(flab, before):
    with session.open_session(flab[2], ["failover_test"], quiet=True) as rb:
        test = failover.plan_test(rb, FAST, failover.readiness(rb))
        outcome = rb.gate.apply(test.plan, test.apply)
        assert outcome.status == "applied"
        return failover.latest_result(rb)


def test_the_failover_converges_with_nothing_lost_at_5000_rows_per_second(flab, ran):
    r = ran
    assert r.verdict == "converged", r.problems
    assert r.rows_lost == {"source": 0, "aurora": 0}
    assert r.acked_rows["source"] == r.acked_rows["aurora"] == 75 * 1000   # Aurora's writer caught up
    # The source's writer is not disturbed by the failover; on a machine shared with other labs it still
    # loses some pace (bench.failover measures the sustained rate, on a quieter machine).
    assert r.write_rate["source"] >= 0.7 * 5000, r.write_rate
    assert r.write_rate["aurora"] >= 75_000 / (15 + r.recovery_seconds + 30), r.write_rate
    assert 0.5 < r.recovery_seconds < 20 and r.recovery_seconds <= r.convergence_seconds < 60
    assert (r.writer_before, r.target, r.writer_after) == (WRITER, READER, READER)
    assert writer_of(flab) == READER
    kinds = r.errors_by_kind("aurora writer")
    assert kinds["connection"] >= 1 and kinds["read_only"] >= 1, r.events     # refused, then read-only
    assert r.errors_by_kind("source writer") == {"connection": 0, "read_only": 0, "other": 0}
    assert len(r.samples) >= 2 * 15 and r.checksums == "match"
    series = {p.series for p in r.lag} - {failover.CLOUDWATCH_SERIES}
    assert len(series) == 2 and all("aurora" in name for name in series), series    # both directions
    assert {c.writer for c in r.cluster} == {WRITER, READER}
    assert len(r.final_lag) == 2 and all(v is not None and v < 1.0 for v in r.final_lag.values()), r.final_lag


def test_the_new_writer_is_another_instance_and_both_uuids_read_as_aurora(flab, ran, before):
    after = query(flab[1]["aurora"], "SELECT @@server_id AS id, @@server_uuid AS uuid")[0]
    assert after["id"] != before["id"] and after["uuid"] != before["uuid"]
    with session.open_session(flab[2], [], quiet=True) as rb:
        origins = splitbrain.origins_of(rb.source(), rb.aurora())
        assert {before["uuid"], after["uuid"]} <= origins.aurora
        assert rb.source().identity.server_uuid in origins.source
        series = heartbeat.replica_lag_metric(rb, minutes=2, period_s=1)
    assert series.dimension == heartbeat.WRITER_ROLE and series.points[-1][1] >= 0     # the new writer's


def test_every_acknowledged_row_is_on_both_sides_with_its_sides_ids(flab, ran):
    """Checked here independently of the library: per origin, every seq 1..acked, ids by offset."""
    _, servers, _ = flab
    for inst in servers.values():
        rows = query(inst, f"SELECT origin, COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi, "
                           f"SUM(MOD(id, 2) = IF(origin = 'source', 0, 1)) AS right_parity "
                           f"FROM {fl.ROWS_TABLE} WHERE run_id = %s GROUP BY origin", (ran.run_id,))
        by_origin = {row["origin"]: row for row in rows}
        for origin in fl.SIDES:
            row = by_origin[origin]
            assert (row["n"], row["lo"], row["hi"], row["right_parity"]) == (ran.acked_rows[origin], 1,
                                                                           ran.acked_rows[origin], row["n"])
    assert replica_running(servers["onprem"]) and replica_running(servers["aurora"])


def test_a_second_run_plans_nothing_and_rerun_plans_again(flab, ran):
    with session.open_session(flab[2], [], quiet=True) as rb:
        assert failover.plan_test(rb, FAST, []).plan.is_empty
        assert failover.latest_result(rb) == ran
        with pytest.raises(CheckFailed):       # a test is due again; these made-up preconditions fail
            failover.plan_test(rb, failover_result.Settings(rerun=True), [CheckResult("x", status="fail")])


def test_cleanup_empties_the_test_rows_and_keeps_the_record(flab, ran):
    _, servers, _ = flab
    with session.open_session(flab[2], ["cleanup:failover_rows"], quiet=True) as rb:
        cleanup = failover.plan_cleanup(rb)
        assert not cleanup.plan.is_empty
        rb.gate.apply(cleanup.plan, cleanup.apply)
        assert failover.plan_cleanup(rb).plan.is_empty
        assert failover.latest_result(rb).run_id == ran.run_id
    wait_for("the truncate on aurora",
             lambda: not query(servers["aurora"], f"SELECT 1 FROM {fl.ROWS_TABLE} LIMIT 1"), 20)
