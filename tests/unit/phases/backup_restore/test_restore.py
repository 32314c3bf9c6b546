"""runbook_lib.phases.backup_restore.restore: the row-count verdicts, the restore request, and the shape of every AWS call of
the restore (botocore Stubber against the real RDS service model)."""
from __future__ import annotations

import pytest
from botocore.stub import Stubber

from runbook_lib.aws import clusters
from runbook_lib.context.params import load_parameters
from runbook_lib.context.session import Session
from runbook_lib.core.approval import Approvals, Plan
from runbook_lib.core.errors import CheckFailed
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.phases.backup_restore import restore as rs
from runbook_lib.phases.backup_restore.backup import Backup
from tests.support import REPO

LAB = REPO / "parameters" / "lab.yaml"
SOURCE, AURORA = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "85d3fc01-e776-11f1-bf99-02fc00000001"


def test_row_counts_fail_only_when_taken_at_the_position():
    same = rs.RowCounts((("a.t", 3, 3),))
    differ = rs.RowCounts((("a.t", 3, 4), ("a.u", 1, "missing"), ("a.v", 2, 2)))
    assert same.verdict.startswith("PASS") and same.require() is None
    assert list(same.to_frame().columns) == ["item", "source", "aurora", "same"]
    assert differ.verdict == "FAIL: row counts differ in 2 of 3 tables: a.t, a.u"
    with pytest.raises(CheckFailed, match="a.t, a.u"):
        differ.require()
    unsure = rs.RowCounts(differ.rows, at_position=False)
    assert unsure.verdict.startswith("WARN") and unsure.require() is None
    assert rs.RowCounts((), recorded=False).verdict.startswith("WARN")


def test_row_counts_are_information_once_aurora_has_moved_on():
    moved_on = rs.RowCounts((("a.t", 3, 5), ("a.u", 1, 1)), later=4)
    assert moved_on.verdict.startswith("INFO: row counts: Aurora has moved on since the restore "
                                       "(4 transactions")
    assert "not compared" in moved_on.verdict and moved_on.require() is None
    assert list(moved_on.to_frame()["aurora"]) == ["5", "1"]


def at_position(gtid: str, exact: bool = True) -> Backup:
    return Backup("20261123T190000Z", "/nonexistent", "clone", "20261123T190001Z", gtid, exact, SOURCE,
                  "9.7.4", 1, 1)


def test_later_transactions_only_when_aurora_holds_the_whole_position():
    b = at_position(f"{SOURCE}:1-100")
    assert rs.later_transactions(b, GtidSet(f"{SOURCE}:1-100")) == GtidSet()
    later = rs.later_transactions(b, GtidSet(f"{SOURCE}:1-102,{AURORA}:1"))
    assert later == GtidSet(f"{SOURCE}:101-102,{AURORA}:1")
    assert rs.later_transactions(b, GtidSet(f"{SOURCE}:1-90,{AURORA}:1-5")) == GtidSet()     # lacks 91-100


@pytest.mark.parametrize("executed, exact, item, status, words", [
    (f"{SOURCE}:1-100", True, "gtid_executed = backup position", "pass", ""),
    (f"{SOURCE}:1-120,{AURORA}:1-3", True, "gtid_executed contains backup position", "pass",
     "moved on since the restore (23 transactions later"),
    (f"{SOURCE}:1-90", False, "gtid_executed = backup position", "warn", "read after a clone"),
    (f"{SOURCE}:1-90", True, "gtid_executed = backup position", "fail", f"lacks {SOURCE}:91-100"),
    (f"{SOURCE}:1-90,{AURORA}:1-3", True, "gtid_executed = backup position", "fail",
     f"lacks {SOURCE}:91-100"),
])
def test_gtid_check_equal_at_the_restore_containing_afterwards(executed, exact, item, status, words):
    check = rs.gtid_check(at_position(f"{SOURCE}:1-100", exact), GtidSet(executed), "/backups")
    assert (check.item, check.status, check.source) == (item, status, f"{SOURCE}:1-100")
    assert words in check.advice if words else check.advice == ""


def test_gtid_check_without_a_backup_record_warns():
    check = rs.gtid_check(None, GtidSet(f"{SOURCE}:1-100"), "/backups")
    assert check.status == "warn" and "no manifest in /backups" in check.advice


# --- the restore request and its AWS calls (Stubber) -----------------------------------------------

def test_restore_request_fields():
    p = load_parameters(LAB)
    r = rs.restore_request(p, "pw", "8.0.36", "backup/20261123T190000Z/", subnet_group="db-private",
                           security_groups=("sg-1",))
    assert r["DBClusterParameterGroupName"] == p.aurora_parameter_group and r["SourceEngine"] == "mysql"
    assert r["S3IngestionRoleArn"] == p.restore_role_arn and r["EngineVersion"] == p.aurora_engine_version
    assert r["DBSubnetGroupName"] == "db-private" and r["VpcSecurityGroupIds"] == ["sg-1"]
    assert "DBSubnetGroupName" not in rs.restore_request(p, "pw", "8.0.36", "x/")


@pytest.fixture
def rb():
    session = Session(load_parameters(LAB), Approvals())
    yield session


def cluster(status: str, members=()) -> dict:
    return {"DBClusters": [{"DBClusterIdentifier": "runbook-aurora", "Status": status,
                            "DBClusterParameterGroup": "runbook-bidir-aurora8",
                            "EngineVersion": "8.0.mysql_aurora.3.08.0", "Endpoint": "x",
                            "DBClusterMembers": [{"DBInstanceIdentifier": i, "IsClusterWriter": w,
                                                  "DBClusterParameterGroupStatus": "in-sync"}
                                                 for i, w in members]}]}


def test_restore_db_cluster_from_s3_request_shape(rb, monkeypatch):
    """RestoreDBClusterFromS3, the wait, both instances: every request validated by the RDS model."""
    monkeypatch.setattr(clusters.time, "sleep", lambda s: None)
    p = rb.params
    request = rs.restore_request(p, "Adm1n-pw", "8.0.36", "backup/20261123T190000Z/")
    rds = rb.aws("rds")
    step = rs.RestoreStep(Plan("restore", "t"), request, (p.aurora_writer_instance, p.aurora_reader_instance),
                          5, rb)
    instance = {"DBInstances": [{"DBInstanceIdentifier": "x", "DBInstanceStatus": "available"}]}
    with Stubber(rds) as s:
        s.add_response("restore_db_cluster_from_s3",
                       {"DBCluster": {"DBClusterIdentifier": "runbook-aurora", "Status": "creating"}},
                       {"DBClusterIdentifier": "runbook-aurora", "Engine": "aurora-mysql",
                        "EngineVersion": "8.0.mysql_aurora.3.08.0", "DBClusterParameterGroupName": "runbook-bidir-aurora8",
                        "MasterUsername": "admin", "MasterUserPassword": "Adm1n-pw", "Port": p.aurora_port,
                        "SourceEngine": "mysql", "SourceEngineVersion": "8.0.36", "S3BucketName": p.s3_bucket,
                        "S3Prefix": "backup/20261123T190000Z/", "S3IngestionRoleArn": p.restore_role_arn,
                        "StorageEncrypted": True, "Tags": [{"Key": "created-by", "Value": "aurora-fallback-runbook"}]})
        s.add_response("describe_db_clusters", cluster("creating"), {"DBClusterIdentifier": "runbook-aurora"})
        s.add_response("describe_db_clusters", cluster("available"), {"DBClusterIdentifier": "runbook-aurora"})
        for name in (p.aurora_writer_instance, p.aurora_reader_instance):
            s.add_response("create_db_instance", {"DBInstance": {"DBInstanceIdentifier": name}},
                           {"DBInstanceIdentifier": name, "DBInstanceClass": p.aurora_instance_class,
                            "Engine": "aurora-mysql", "DBClusterIdentifier": "runbook-aurora"})
        for name in (p.aurora_writer_instance, p.aurora_reader_instance):
            s.add_response("describe_db_instances", instance, {"DBInstanceIdentifier": name})
        s.add_response("describe_db_clusters",
                       cluster("available", [(p.aurora_writer_instance, True), (p.aurora_reader_instance, False)]),
                       {"DBClusterIdentifier": "runbook-aurora"})
        frame = step.apply()
        s.assert_no_pending_responses()
    assert list(frame["role"]) == ["writer", "reader"]


def test_an_existing_cluster_is_never_restored_over(rb, capsys):
    p = rb.params
    with Stubber(rb.aws("rds")) as s:
        s.add_response("describe_db_clusters",
                       cluster("available", [(p.aurora_writer_instance, True), (p.aurora_reader_instance, False)]),
                       {"DBClusterIdentifier": "runbook-aurora"})
        step = rs.plan_restore(rb, None)
    assert step.plan.is_empty and not step.request and "nothing to restore" in capsys.readouterr().out


def test_an_existing_cluster_gets_only_its_missing_reader(rb):
    p = rb.params
    with Stubber(rb.aws("rds")) as s:
        s.add_response("describe_db_clusters", cluster("available", [(p.aurora_writer_instance, True)]),
                       {"DBClusterIdentifier": "runbook-aurora"})
        step = rs.plan_restore(rb, None)
    assert step.instances == (p.aurora_reader_instance,) and not step.request
    assert list(step.plan.to_frame()["action"]) == ["CreateDBInstance (reader)"]


def test_an_existing_cluster_with_another_group_stops(rb):
    answer = cluster("available")
    answer["DBClusters"][0]["DBClusterParameterGroup"] = "default.aurora-mysql8.0"
    with Stubber(rb.aws("rds")) as s:
        s.add_response("describe_db_clusters", answer, {"DBClusterIdentifier": "runbook-aurora"})
        with pytest.raises(CheckFailed, match="parameter group") as e:
            rs.plan_restore(rb, None)
    assert "never restores over an existing cluster" in e.value.hint
