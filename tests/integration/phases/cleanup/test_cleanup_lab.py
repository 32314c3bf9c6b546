"""runbook_lib.phases.cleanup.steps against real servers and the lab's AWS endpoint.

The module builds a lab instance of its own (``<RUNBOOK_TEST_LAB>-cleanup``, ports
$RUNBOOK_TEST_PORT_BASE+13 .. +15, or $RUNBOOK_TEST_CLEANUP_PORT_BASE) and creates what the clean-up
removes directly, without the notebooks: a cluster parameter group, a cluster with a writer and a reader
on the endpoint (which restarts the ``aurora`` server with the group: binary log, GTIDs), GTIDs on the
source online, the replication account on each side and a running channel in each direction (labroot),
objects in S3 and a backup in backup_dir.  Beside them things the parameters do not name, which must
survive: another parameter group, S3 objects outside s3_prefix, a file of someone else in backup_dir.
The tests run in file order and build on each other: look, refuse, keep the cluster, delete the rest.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from runbook_lib.context import session
from runbook_lib.context.params import load_parameters
from runbook_lib.core.errors import CheckFailed, NotApplied, PlanStale
from runbook_lib.phases.cleanup import plan as cleanup_plan
from runbook_lib.phases.cleanup import steps as cleanup
from runbook_lib.phases.parameter_group import steps as parameter_group
from tests.support import (
    aws_client,
    own_lab,
    params_variant,
    query,
    replica_running,
    replicate_both_ways,
    wait_for,
)

pytestmark = pytest.mark.lab

OTHER_GROUP = "someone-elses-group"
BACKUP = "20250101T000000Z"
S3_KEYS = [f"backup/{BACKUP}/ibdata1", f"backup/{BACKUP}/mysql.ibd", f"backup/{BACKUP}/undo_001"]
FOREIGN_KEYS = ["other/keep.txt", "backup-old/keep.txt"]       # outside s3_prefix 'backup/'


@pytest.fixture(scope="module")
def clab(tmp_path_factory):
    """(state, servers, params, boto3 client factory) with every resource of the clean-up in place."""
    from runbook_lib.lab import inspect
    with own_lab("cleanup") as (state, servers):
        params_file = inspect.write_params(state, tmp_path_factory.mktemp("cleanup") / "lab.yaml")
        p = yaml.safe_load(params_file.read_text())

        def aws(service: str):
            return aws_client(state.endpoint_url, service)

        rds, s3 = aws("rds"), aws("s3")
        values = parameter_group.desired_values(load_parameters(params_file))
        for group in (p["aurora_parameter_group"], OTHER_GROUP):
            rds.create_db_cluster_parameter_group(DBClusterParameterGroupName=group, Description="test",
                                                  DBParameterGroupFamily=p["aurora_parameter_group_family"])
            rds.modify_db_cluster_parameter_group(DBClusterParameterGroupName=group, Parameters=[
                {"ParameterName": k, "ParameterValue": v, "ApplyMethod": "pending-reboot"}
                for k, v in values.items()])
        rds.create_db_cluster(DBClusterIdentifier=p["aurora_cluster_id"], Engine="aurora-mysql",
                              EngineVersion=p["aurora_engine_version"], MasterUsername="admin",
                              DBClusterParameterGroupName=p["aurora_parameter_group"],
                              MasterUserPassword=state.passwords["aurora_admin"])
        wait_for("the cluster", lambda: rds.describe_db_clusters(DBClusterIdentifier=p["aurora_cluster_id"])[
            "DBClusters"][0]["Status"] == "available", 120)
        for instance in (p["aurora_writer_instance"], p["aurora_reader_instance"]):
            rds.create_db_instance(DBInstanceIdentifier=instance, DBClusterIdentifier=p["aurora_cluster_id"],
                                   Engine="aurora-mysql", DBInstanceClass="db.r6g.large")
        s3.create_bucket(Bucket=p["s3_bucket"])
        s3.put_bucket_versioning(Bucket=p["s3_bucket"], VersioningConfiguration={"Status": "Enabled"})
        for key in S3_KEYS + FOREIGN_KEYS:
            s3.put_object(Bucket=p["s3_bucket"], Key=key, Body=b"x" * 1024)
        backup_dir = Path(p["backup_dir"])
        (backup_dir / BACKUP).mkdir(parents=True)
        (backup_dir / BACKUP / "ibdata1").write_bytes(b"x" * 4096)
        (backup_dir / f"{BACKUP}.runbook.json").write_text(json.dumps({"name": BACKUP}))
        (backup_dir / "notes.txt").write_text("someone else's file")
        replicate_both_ways(servers, state.passwords["replicator"])
        yield state, servers, params_file, aws


def open_rb(clab, approve=(), **changes):
    """A session as a notebook opens it; ``changes`` make a variant of the parameters file."""
    params_file = params_variant(clab[2], **changes) if changes else Path(clab[2])
    return session.open_session(params_file, list(approve), quiet=True)


def run_all(rb, s) -> dict[str, str]:
    """Every step in order, as the notebook's cells do; the outcome of each."""
    out = {}
    for resource in cleanup_plan.RESOURCES:
        step = cleanup.plan_step(rb, resource, s)
        out[resource] = rb.gate.apply(step.plan, step.apply).status
    return out


def state_of(clab) -> dict:
    """What exists, read directly (labroot, boto3, the file system)."""
    _, servers, params_file, aws = clab
    p = yaml.safe_load(Path(params_file).read_text())
    rds, s3 = aws("rds"), aws("s3")
    clusters = {c["DBClusterIdentifier"]: sorted(m["DBInstanceIdentifier"] for m in c["DBClusterMembers"])
                for c in rds.describe_db_clusters()["DBClusters"]}
    return {
        "channels": {n: [r["Source_Port"] for r in query(s, "SHOW REPLICA STATUS")]
                     for n, s in servers.items()},
        "accounts": {n: len(query(s, "SELECT 1 FROM mysql.user WHERE User = 'replicator'"))
                     for n, s in servers.items()},
        "clusters": clusters,
        "instances": sorted(i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]),
        "groups": sorted(g["DBClusterParameterGroupName"] for g in rds.describe_db_cluster_parameter_groups()[
            "DBClusterParameterGroups"] if not g["DBClusterParameterGroupName"].startswith("default.")),
        "s3": sorted(o["Key"] for o in s3.list_objects_v2(Bucket=p["s3_bucket"]).get("Contents", [])),
        "local": sorted(x.name for x in Path(p["backup_dir"]).iterdir()),
        "snapshots": sorted(x["DBClusterSnapshotIdentifier"] for x in rds.describe_db_cluster_snapshots(
            SnapshotType="manual")["DBClusterSnapshots"]),
    }


def test_the_inventory_shows_what_exists_in_the_order_of_deletion(clab):
    with open_rb(clab) as rb:
        s = cleanup_plan.settings(rb.params)
        inv = cleanup.inventory(rb, s)
    frame = inv.to_frame()
    assert list(frame["#"]) == list(range(1, 11))
    assert frame.loc[0, "state"].startswith("running (IO Yes, SQL Yes), from 127.0.0.1:")
    assert list(frame["approval step"])[2:5] == ["cleanup:accounts (after cleanup:replication)"] * 2 + [
        "cleanup:cluster (after cleanup:replication)"]
    assert "3 objects" in frame.loc[8, "state"] and "2 files/folders" in frame.loc[9, "state"]
    assert inv.summary().startswith("10 resource(s) exist; to delete, in order: cleanup:replication, ")
    with open_rb(clab) as rb:
        delete = cleanup.plan_step(rb, "backup", s).plan.steps[0]
    assert delete.action == "DeleteObjects" and "the bucket is versioned" in delete.detail


def test_without_approval_nothing_changes_and_later_steps_wait(clab):
    before = state_of(clab)
    with open_rb(clab, approvals=[]) as rb:
        s = cleanup_plan.settings(rb.params)
        step = cleanup.plan_step(rb, "replication", s)
        assert rb.gate.apply(step.plan, step.apply).status == "skipped"
        for resource, needed in (("accounts", "cleanup:replication"), ("cluster", "cleanup:replication")):
            with pytest.raises(NotApplied) as e:
                cleanup.plan_step(rb, resource, s)
            assert e.value.step == needed
    assert state_of(clab) == before


def test_a_plan_that_no_longer_matches_the_servers_is_not_applied(clab):
    _, servers, _, _ = clab
    before = state_of(clab)
    with open_rb(clab, ["cleanup:*"]) as rb:
        step = cleanup.plan_step(rb, "replication", cleanup_plan.settings(rb.params))
        query(servers["onprem"], "STOP REPLICA")      # the source's channel changes behind the plan's back
        try:
            with pytest.raises(PlanStale):
                rb.gate.apply(step.plan, step.apply)
            assert replica_running(servers["aurora"]) and state_of(clab) == before
        finally:
            query(servers["onprem"], "START REPLICA")
    wait_for("the source's channel running again", lambda: replica_running(servers["onprem"]), 60)


def test_keep_cluster_retires_the_source_side_only(clab):
    p = yaml.safe_load(Path(clab[2]).read_text())
    with open_rb(clab, ["cleanup:*"]) as rb:
        s = cleanup_plan.settings(rb.params, keep=["cluster"])
        before = cleanup.inventory(rb, s)
        assert [r.step for r in before.rows if r.resource.startswith("parameter group")] == [
            f"kept: cluster {p['aurora_cluster_id']} uses it and is kept"]
        assert run_all(rb, s) == {"replication": "applied", "accounts": "applied", "cluster": "nothing to do",
                                  "parameter_group": "nothing to do", "backup": "applied"}
        after = cleanup.inventory(rb, s)
    after.require_clean()
    assert after.verdict().startswith("PASS: clean-up")
    now = state_of(clab)
    assert now["channels"] == {"onprem": [], "aurora": []} and now["accounts"] == {"onprem": 0, "aurora": 0}
    assert now["clusters"] == {p["aurora_cluster_id"]: sorted([p["aurora_writer_instance"],
                                                               p["aurora_reader_instance"]])}
    assert now["groups"] == sorted([p["aurora_parameter_group"], OTHER_GROUP])
    assert now["s3"] == sorted(FOREIGN_KEYS) and now["local"] == ["notes.txt"] and now["snapshots"] == []


def test_a_protected_cluster_is_refused(clab):
    _, _, _, aws = clab
    p = yaml.safe_load(Path(clab[2]).read_text())
    aws("rds").modify_db_cluster(DBClusterIdentifier=p["aurora_cluster_id"], DeletionProtection=True)
    try:
        with open_rb(clab, ["cleanup:*"]) as rb:
            s = cleanup_plan.settings(rb.params)
            assert "REFUSED: cluster" in cleanup.inventory(rb, s).to_frame().loc[4, "approval step"]
            with pytest.raises(CheckFailed) as e:
                cleanup.plan_step(rb, "cluster", s)
            assert "deletion protection on" in str(e.value) and "keep" in e.value.hint
    finally:
        aws("rds").modify_db_cluster(DBClusterIdentifier=p["aurora_cluster_id"], DeletionProtection=False)
    assert p["aurora_cluster_id"] in state_of(clab)["clusters"]


def test_the_rest_goes_with_a_final_snapshot_and_only_what_the_parameters_name(clab):
    p = yaml.safe_load(Path(clab[2]).read_text())
    with open_rb(clab, ["cleanup:*"]) as rb:
        s = cleanup_plan.settings(rb.params)
        plan = cleanup.plan_step(rb, "cluster", s).plan
        assert [(x.action, x.detail) for x in plan.steps if x.action.startswith("Delete")] == [
            ("DeleteDBInstance (reader)", p["aurora_reader_instance"]),
            ("DeleteDBInstance (writer)", p["aurora_writer_instance"]),
            ("DeleteDBCluster", f"{p['aurora_cluster_id']}, final snapshot {s.snapshot_id}")]
        assert run_all(rb, s) == {"replication": "nothing to do", "accounts": "nothing to do",
                                  "cluster": "applied", "parameter_group": "applied",
                                  "backup": "nothing to do"}
        after = cleanup.inventory(rb, s)
    after.require_clean()
    assert after.found.aurora is None and after.found.final_snapshots == (s.snapshot_id,)
    now = state_of(clab)
    assert (now["clusters"], now["instances"], now["groups"]) == ({}, [], [OTHER_GROUP])
    assert now["snapshots"] == [s.snapshot_id]
    assert s.snapshot_id.startswith(f"{p['aurora_cluster_id']}-final-")
    assert now["s3"] == sorted(FOREIGN_KEYS) and now["local"] == ["notes.txt"]


def test_a_second_run_plans_nothing(clab):
    before = state_of(clab)
    with open_rb(clab, ["cleanup:*"]) as rb:
        s = cleanup_plan.settings(rb.params)
        assert all(cleanup.plan_step(rb, r, s).plan.is_empty for r in cleanup_plan.RESOURCES)
        assert set(run_all(rb, s).values()) == {"nothing to do"}
        after = cleanup.inventory(rb, s)
        after.require_clean()
        assert after.verdict().startswith("PASS: clean-up")
    assert state_of(clab) == before
