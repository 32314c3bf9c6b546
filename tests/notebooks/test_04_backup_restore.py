"""Notebook 04_backup_restore on the lab: nothing backed up, uploaded or restored without approvals;
with them a cluster restored from the clone in S3 (group attached, writer and reader) whose server
holds the source's data and exactly the backup's GTID position; a second run changes nothing, also after
Aurora has moved on from that position."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from papermill.exceptions import PapermillExecutionError

from runbook_lib.mysql.gtid import GtidSet
from tests.notebooks.conftest import outputs_text
from tests.support import last_output

pytestmark = [pytest.mark.lab, pytest.mark.notebooks]

STEM = "04_backup_restore"
APP_TABLES_SQL = """SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) AS t FROM information_schema.TABLES
    WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA IN ({}) ORDER BY 1"""


def server_state(lab, name: str, schemas: list[str]) -> dict:
    """gtid_executed and the row count of every application table, read as labroot."""
    with lab.root(name) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@global.gtid_executed AS g")
        state = {"gtid": GtidSet(cur.fetchone()["g"])}
        cur.execute(APP_TABLES_SQL.format(", ".join(["%s"] * len(schemas))), schemas)
        tables = [r["t"] for r in cur.fetchall()]
        counts = {}
        for table in tables:
            schema, t = table.split(".")
            cur.execute(f"SELECT COUNT(*) AS n FROM `{schema}`.`{t}`")
            counts[table] = cur.fetchone()["n"]
        state["counts"] = counts
    return state


def aws_state(lab, params: dict) -> dict:
    """Clusters, instances, buckets and backup objects as the endpoint describes them."""
    rds, s3 = lab.aws("rds"), lab.aws("s3")
    buckets = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    objects = {}
    if params["s3_bucket"] in buckets:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=params["s3_bucket"], Prefix=params["s3_prefix"])
        objects = {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}
    clusters = {c["DBClusterIdentifier"]: {
        "status": c["Status"], "group": c["DBClusterParameterGroup"],
        "members": sorted((m["DBInstanceIdentifier"], m["IsClusterWriter"], m["DBClusterParameterGroupStatus"])
                          for m in c["DBClusterMembers"])}
        for c in rds.describe_db_clusters()["DBClusters"]}
    instances = sorted(i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"])
    return {"buckets": buckets, "objects": objects, "clusters": clusters, "instances": instances}


def backup_dir(params: dict) -> list[str]:
    folder = Path(params["backup_dir"])
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def manifests(params: dict) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(Path(params["backup_dir"]).glob("*.runbook.json"))]


def test_without_approvals_nothing_is_backed_up_uploaded_or_restored(lab, pipeline):
    pipeline.through("03_parameter_group")
    p = pipeline.params
    before = (backup_dir(p), aws_state(lab, p), server_state(lab, "aurora", p["app_schemas"]))
    assert not before[1]["clusters"] and not before[2]["counts"], "the lab must not be restored yet"
    with pytest.raises(PapermillExecutionError) as caught:
        pipeline.run(STEM, pipeline.params_file(approvals=[]))
    err = caught.value
    assert err.ename == "NotApplied" and "source_backup.latest_backup" in err.source
    assert "completed backup" in err.evalue and "'backup'" in err.evalue
    text = last_output(pipeline, STEM)
    assert "SKIPPED: step 'backup' not approved" in text
    assert "CLONE LOCAL DATA DIRECTORY" in text and "INSTALL PLUGIN clone" in text       # the plan was shown
    assert (backup_dir(p), aws_state(lab, p), server_state(lab, "aurora", p["app_schemas"])) == before


def test_a_wrong_source_password_stops_the_backup_cell_and_changes_nothing(lab, pipeline, monkeypatch):
    pipeline.through("03_parameter_group")
    p = pipeline.params
    before = (backup_dir(p), aws_state(lab, p))
    monkeypatch.setenv("RUNBOOK_TEST_WRONG_PW", "not-the-password")   # the kernel inherits it
    with pytest.raises(PapermillExecutionError) as caught:
        pipeline.run(STEM, pipeline.params_file(source_admin_password="env:RUNBOOK_TEST_WRONG_PW"))
    err = caught.value
    assert err.ename == "AuthenticationFailed" and "backup_where.plan(rb)" in err.source
    assert "access denied for user 'dba'" in err.evalue and "not-the-password" not in err.evalue
    assert (backup_dir(p), aws_state(lab, p)) == before


def test_with_approvals_aurora_holds_the_source_at_the_backup_position(lab, pipeline):
    nb = pipeline.through(STEM)[STEM]
    text = outputs_text(nb)
    p = pipeline.params
    assert text.count("APPLIED: step 'backup'") == 2 and "APPLIED: step 'restore'" in text
    assert "PASS: restore: all" in text and "PASS: row counts" in text
    assert "MasterUserPassword=********" in text
    # the backup and its record
    [record] = manifests(p)
    assert record["method"] == "clone" and record["gtid_exact"] and Path(record["directory"]).is_dir()
    # S3: every file of the backup under its prefix
    aws = aws_state(lab, p)
    prefix = f"{p['s3_prefix']}{record['name']}/"
    assert len([k for k in aws["objects"] if k.startswith(prefix)]) == record["files"]
    assert aws["objects"][prefix + "mysql.ibd"] > 0
    # the cluster: available, the group attached and in sync, writer and reader
    cluster = aws["clusters"][p["aurora_cluster_id"]]
    assert (cluster["status"], cluster["group"]) == ("available", p["aurora_parameter_group"])
    assert cluster["members"] == [(p["aurora_writer_instance"], True, "in-sync"),
                                  (p["aurora_reader_instance"], False, "in-sync")]
    # the aurora server: the source's data and exactly the backup's GTID position
    source, aurora = (server_state(lab, n, p["app_schemas"]) for n in ("onprem", "aurora"))
    assert aurora["gtid"] == GtidSet(record["gtid"]) == source["gtid"]
    assert aurora["counts"] == source["counts"] == dict(record["counts"])
    assert len(aurora["counts"]) >= len(p["app_schemas"])
    with lab.root("aurora") as conn, conn.cursor() as cur:
        cur.execute("SELECT @@global.gtid_mode AS g, @@global.log_bin AS b, @@global.auto_increment_offset AS o")
        assert cur.fetchone() == {"g": "ON", "b": 1, "o": p["aurora_auto_increment_offset"]}


def test_a_second_run_changes_nothing(lab, pipeline):
    pipeline.through(STEM)
    p = pipeline.params
    before = (backup_dir(p), aws_state(lab, p), server_state(lab, "aurora", p["app_schemas"]))
    text = outputs_text(pipeline.run(STEM))
    assert text.count("nothing to do (step 'backup')") == 2 and "nothing to do (step 'restore')" in text
    assert "never runs over an existing cluster" in text
    assert "APPLIED" not in text and "SKIPPED" not in text
    assert "PASS: restore: all" in text and "PASS: row counts" in text
    assert (backup_dir(p), aws_state(lab, p), server_state(lab, "aurora", p["app_schemas"])) == before


def test_a_run_after_aurora_moved_on_checks_containment_and_changes_nothing(lab, pipeline):
    """Regression: once Aurora has moved past the backup's position (replication, canary and failover
    rows, writes on either side), a run of 04 judged the moment of the restore again and stopped on a
    row count.  Now Aurora must contain the position, and the counts are information."""
    pipeline.through(STEM)
    p = pipeline.params
    for name in ("onprem", "aurora"):                  # rows written after the restore, on both sides
        with lab.root(name) as conn, conn.cursor() as cur:
            cur.execute("INSERT INTO tenant_acme.orders (sku, qty, placed_at) VALUES (%s, 1, NOW())",
                        (f"t04-{name}",))
    [record] = manifests(p)
    before = (backup_dir(p), aws_state(lab, p), server_state(lab, "aurora", p["app_schemas"]))
    assert GtidSet(record["gtid"]) < before[2]["gtid"]
    text = outputs_text(pipeline.run(STEM))
    assert "gtid_executed contains backup position" in text and "PASS: restore: all" in text
    assert "INFO: row counts: Aurora has moved on since the restore (1 transaction after" in text
    assert "APPLIED" not in text and "SKIPPED" not in text
    assert (backup_dir(p), aws_state(lab, p), server_state(lab, "aurora", p["app_schemas"])) == before
