"""Notebook 10_cleanup on the lab, after the phases before it: what it removes, read back with labroot,
boto3 and the file system.

Order matters (pytest runs them top to bottom): without approvals first and with a bad knob (nothing may
change), then the approved run of the pipeline (the lab yaml approves ``cleanup:*``), then its second run.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from papermill.exceptions import PapermillExecutionError

from runbook_lib.run.runner import discover
from tests.notebooks.conftest import outputs_text
from tests.support import last_output, query

pytestmark = [pytest.mark.lab, pytest.mark.notebooks]

STEM = "10_cleanup"
STEPS = ("cleanup:replication", "cleanup:accounts", "cleanup:cluster", "cleanup:parameter_group",
         "cleanup:backup")


def previous_phase() -> str:
    stems = [nb.stem for nb in discover()]
    return stems[stems.index(STEM) - 1]


def lab_state(lab, p: dict) -> dict:
    """What the clean-up may remove, read directly on both servers, the endpoint and the disk."""
    rds, s3 = lab.aws("rds"), lab.aws("s3")
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    folder = Path(p["backup_dir"])
    return {
        "channels": {n: [(r["Source_Port"], r["Replica_IO_Running"], r["Replica_SQL_Running"])
                         for r in query(s, "SHOW REPLICA STATUS")] for n, s in lab.instances.items()},
        "accounts": {n: len(query(s, "SELECT 1 FROM mysql.user WHERE User = 'replicator'"))
                     for n, s in lab.instances.items()},
        "clusters": sorted(c["DBClusterIdentifier"] for c in rds.describe_db_clusters()["DBClusters"]),
        "instances": sorted(i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]),
        "group": [g["DBClusterParameterGroupName"] for g in rds.describe_db_cluster_parameter_groups()[
            "DBClusterParameterGroups"] if g["DBClusterParameterGroupName"] == p["aurora_parameter_group"]],
        "s3": sorted(o["Key"] for o in s3.list_objects_v2(Bucket=p["s3_bucket"], Prefix=p["s3_prefix"]).get(
            "Contents", [])) if p["s3_bucket"] in buckets else [],
        "local": sorted(x.name for x in folder.iterdir()) if folder.is_dir() else [],
        "snapshots": sorted(s["DBClusterSnapshotIdentifier"] for s in rds.describe_db_cluster_snapshots(
            SnapshotType="manual")["DBClusterSnapshots"]),
    }


def test_without_approvals_nothing_is_deleted(pipeline, lab):
    pipeline.through(previous_phase())
    p = pipeline.params
    before = lab_state(lab, p)
    assert before["clusters"] == [p["aurora_cluster_id"]]
    assert before["group"] and before["s3"] and before["local"]
    assert all(before["channels"].values()) and before["accounts"] == {"onprem": 1, "aurora": 1}
    with pytest.raises(PapermillExecutionError) as exc:
        pipeline.run(STEM, pipeline.params_file(approvals=[]))
    assert exc.value.ename == "NotApplied" and "'cleanup:replication'" in exc.value.evalue
    assert 'plan_step(rb, "accounts", opts)' in exc.value.source
    text = last_output(pipeline, STEM)
    assert "SKIPPED: step 'cleanup:replication' not approved" in text
    assert "to delete, in order: cleanup:replication, cleanup:accounts, cleanup:cluster" in text
    assert "CALL mysql.rds_stop_replication" in text and "RESET REPLICA ALL FOR CHANNEL" in text   # the plan
    assert lab_state(lab, p) == before


def test_a_bad_knob_stops_the_first_cell_that_needs_it(pipeline, lab):
    pipeline.through(previous_phase())
    before = lab_state(lab, pipeline.params)
    with pytest.raises(PapermillExecutionError) as exc:
        pipeline.run(STEM, keep=["clusters"])
    assert exc.value.ename == "ParameterError" and "'clusters' is not a resource" in exc.value.evalue
    assert "cleanup_plan.settings" in exc.value.source
    with pytest.raises(PapermillExecutionError) as exc:
        pipeline.run(STEM, pipeline.params_file(aws_endpoint_url="http://127.0.0.1:9"))
    assert exc.value.ename == "AwsError" and "cleanup.inventory" in exc.value.source
    assert lab_state(lab, pipeline.params) == before


def test_approved_run_removes_everything_it_names(pipeline, lab):
    nb = pipeline.through(STEM)[STEM]
    text = outputs_text(nb)
    p = pipeline.params
    for step in STEPS:
        assert f"APPLIED: step '{step}'" in text
    assert "PASS: clean-up" in text and lab.password("replicator") not in text
    after = lab_state(lab, p)
    assert after["channels"] == {"onprem": [], "aurora": []}
    assert after["accounts"] == {"onprem": 0, "aurora": 0}
    assert (after["clusters"], after["instances"], after["group"], after["s3"]) == ([], [], [], [])
    assert not [x for x in after["local"] if x[:8].isdigit()]                # the runbook's backups are gone
    final = [s for s in after["snapshots"] if s.startswith(f"{p['aurora_cluster_id']}-final-")]
    assert len(final) == 1 and f"final snapshot {final[0]}" in text


def test_second_run_plans_nothing_and_passes(pipeline, lab):
    pipeline.through(STEM)
    before = lab_state(lab, pipeline.params)
    text = outputs_text(pipeline.run(STEM))
    for step in STEPS:
        assert f"nothing to do (step '{step}')" in text
    assert "to delete, in order: nothing" in text and "PASS: clean-up" in text
    assert lab_state(lab, pipeline.params) == before
