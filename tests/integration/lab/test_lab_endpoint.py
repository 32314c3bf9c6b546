"""The lab's AWS endpoint against real servers, called with boto3 as a notebook calls it.

The module builds a lab instance of its own with ``runbook_lib.lab.control.up`` (the path of
``runbook lab up``: the endpoint runs as ``python -m runbook_lib.lab.endpoint``), because it
restores over and crashes the ``aurora`` server, which the session's shared ``lab`` must not
see.  Its lab is ``<RUNBOOK_TEST_LAB>-endpoint`` (ports: tests/support.py's table).  The tests run in file order and build on each other, as the runbook's
phases do: parameter group, backup, restore, group changes, replication, failover, metric.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pymysql
import pytest
from botocore.exceptions import ClientError

from tests.support import aws_client, lab_name, port_base, query, wait_for

pytestmark = pytest.mark.lab

NAME = lab_name("endpoint")
FAMILY = "aurora-mysql8.0"
BLOG_GROUP = {"binlog_format": "ROW", "gtid-mode": "ON", "enforce_gtid_consistency": "ON",
              "log_bin_trust_function_creators": "1", "auto_increment_increment": "2",
              "auto_increment_offset": "1"}
RUNNING = "SELECT 1 FROM performance_schema.replication_connection_status WHERE SERVICE_STATE = 'ON'"
INSERT = "INSERT INTO tenant_acme.orders (sku, qty, placed_at) VALUES (%s, 1, NOW())"


@pytest.fixture(scope="module")
def elab():
    """(state, {'onprem':..., 'aurora':...}) of a lab instance of this module's own."""
    from runbook_lib.lab import control, rootfs

    base = port_base("endpoint")
    control.down(NAME, destroy=True, say=lambda *_: None)
    root = rootfs.ensure_rootfs()
    keys = ("labroot", "onprem_dba", "aurora_admin", "replicator", "apps")
    state = control.LabState(name=NAME, port_base=base, runtime_dir=str(root / "srv" / NAME),
                             rootfs=str(root), mysqld="/usr/sbin/mysqld", persona_rows=2000,
                             passwords={k: f"Lab-{k}-{os.getpid()}" for k in keys})
    path = control.state_file(NAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(state)))
    path.chmod(0o600)
    try:
        state = control.up(NAME, aurora="3", say=lambda *_: None)      # builds both servers, starts the endpoint
        yield state, control.instances(state)
    finally:
        for inst in control.instances(state).values():
            inst.kill()                                     # destroyed next: no need to wait for shutdowns
        control.down(NAME, destroy=True, say=lambda *_: None)


@pytest.fixture(scope="module")
def aws(elab):
    state, _ = elab

    def client(service: str):
        return aws_client(state.endpoint_url, service)
    return client


def admin(elab, **kw) -> pymysql.Connection:
    state, servers = elab
    return servers["aurora"].connect(user="admin", password=state.passwords["aurora_admin"], **kw)


def replica_errors(inst) -> str:
    rows = query(inst, "SHOW REPLICA STATUS")
    return str({k: rows[0][k] for k in ("Last_IO_Error", "Last_SQL_Error")} if rows else "no replica channel")


def cluster(aws, cid: str = "bidi") -> dict:
    return aws("rds").describe_db_clusters(DBClusterIdentifier=cid)["DBClusters"][0]


def group_status(aws) -> set[str]:
    return {m["DBClusterParameterGroupStatus"] for m in cluster(aws)["DBClusterMembers"]}


def writers(aws) -> list[str]:
    return [m["DBInstanceIdentifier"] for m in cluster(aws)["DBClusterMembers"] if m["IsClusterWriter"]]


def events(aws, cid: str = "bidi") -> list[str]:
    answer = aws("rds").describe_events(SourceType="db-cluster", SourceIdentifier=cid)
    return [e["Message"] for e in answer["Events"]]


def engine_defaults(aws, family: str = FAMILY) -> dict[str, dict]:
    answer = aws("rds").describe_engine_default_cluster_parameters(DBParameterGroupFamily=family)
    return {p["ParameterName"]: p for p in answer["EngineDefaults"]["Parameters"]}


def test_health_and_moto_behind_it(elab, aws):
    state, _ = elab
    with urllib.request.urlopen(f"{state.endpoint_url}/_lab/health", timeout=2) as resp:
        assert (resp.status, resp.read()) == (200, b"ok")
    names = {s["Name"] for s in aws("secretsmanager").list_secrets()["SecretList"]}   # published by lab up
    assert "runbook-lab/aurora/admin" in names


def test_engine_defaults_are_auroras(aws):
    params = engine_defaults(aws)
    binlog_format = params["binlog_format"]
    assert (binlog_format["ParameterValue"], binlog_format["ApplyType"]) == ("OFF", "static")
    assert params["gtid-mode"]["ParameterValue"] == "OFF_PERMISSIVE"
    assert "ParameterValue" not in params["binlog_checksum"]          # AWS shows no value: engine default
    assert params["binlog_row_image"]["IsModifiable"] is False
    assert "sync_binlog" not in params and "gtid_mode" not in params
    assert "aurora_enable_repl_bin_log_filtering" in engine_defaults(aws, "aurora-mysql5.7")
    versions = aws("rds").describe_db_engine_versions(Engine="aurora-mysql", DBParameterGroupFamily=FAMILY)
    assert "8.0.mysql_aurora.3.08.0" in {v["EngineVersion"] for v in versions["DBEngineVersions"]}


@pytest.fixture(scope="module")
def group(aws) -> str:
    """The AWS blog's custom cluster parameter group."""
    rds = aws("rds")
    rds.create_db_cluster_parameter_group(DBClusterParameterGroupName="bidi-pg",
                                          DBParameterGroupFamily=FAMILY, Description="bi-directional")
    rds.modify_db_cluster_parameter_group(DBClusterParameterGroupName="bidi-pg", Parameters=[
        {"ParameterName": n, "ParameterValue": v, "ApplyMethod": "pending-reboot"}
        for n, v in BLOG_GROUP.items()])
    return "bidi-pg"


def test_parameter_group_modify_validates_and_compares(aws, group):
    rds = aws("rds")
    refused = (  # name, value, AWS error code, message
        ("sync_binlog", "1", "InvalidParameterValue", "Could not find parameter with name: sync_binlog"),
        ("binlog_format", "ROWS", "InvalidParameterValue", "Invalid parameter value: ROWS for: binlog_"),
        ("gtid-mode", "ON", "InvalidParameterCombination", "cannot use immediate apply method for static"),
    )
    for name, value, code, message in refused:
        with pytest.raises(ClientError) as err:
            rds.modify_db_cluster_parameter_group(DBClusterParameterGroupName=group, Parameters=[
                {"ParameterName": name, "ParameterValue": value, "ApplyMethod": "immediate"}])
        error = err.value.response["Error"]
        assert error["Code"] == code and message in error["Message"]
    user = rds.describe_db_cluster_parameters(DBClusterParameterGroupName=group, Source="user")["Parameters"]
    assert {p["ParameterName"]: p["ParameterValue"] for p in user} == BLOG_GROUP
    merged = {p["ParameterName"]: p.get("ParameterValue")
              for p in rds.describe_db_cluster_parameters(DBClusterParameterGroupName=group)["Parameters"]}
    default = {name: p.get("ParameterValue") for name, p in engine_defaults(aws).items()}
    assert merged.keys() == default.keys()
    assert {n for n in merged if merged[n] != default[n]} == set(BLOG_GROUP)   # the console's "Compare"


@pytest.fixture(scope="module")
def backup(elab, aws, group) -> dict:
    """onprem prepared as the blog's source, cloned, the clone uploaded to s3://lab-backups/onprem/."""
    state, servers = elab
    onprem = servers["onprem"]
    with onprem.connect() as conn, conn.cursor() as cur:
        for step in ("enforce_gtid_consistency = WARN", "enforce_gtid_consistency = ON",
                     "gtid_mode = OFF_PERMISSIVE", "gtid_mode = ON_PERMISSIVE", "gtid_mode = ON",
                     "auto_increment_increment = 2", "auto_increment_offset = 2"):
            cur.execute(f"SET PERSIST {step}")
        for sku in ("a-1", "a-2", "a-3"):
            cur.execute(INSERT, (sku,))
        cur.execute("INSTALL PLUGIN clone SONAME 'mysql_clone.so'")
        clone = onprem.runtime_dir.parent / "clone"
        shutil.rmtree(clone, ignore_errors=True)
        cur.execute("CLONE LOCAL DATA DIRECTORY = %s", (onprem.runner.inside(clone),))
        cur.execute("SELECT @@gtid_executed AS gtids, @@server_uuid AS uuid")
        source = cur.fetchone()
        cur.execute("SELECT COUNT(*) AS n FROM tenant_acme.orders")
        source["orders"] = cur.fetchone()["n"]
    s3 = aws("s3")
    s3.create_bucket(Bucket="lab-backups")
    for f in sorted(p for p in clone.rglob("*") if p.is_file()):
        s3.upload_file(str(f), "lab-backups", f"onprem/{f.relative_to(clone)}")
    shutil.rmtree(clone)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "rds.amazonaws.com"}}]}
    role = aws("iam").create_role(RoleName="aurora-s3-ingestion", AssumeRolePolicyDocument=json.dumps(trust))
    source["role_arn"] = role["Role"]["Arn"]
    return source


def restore_args(elab, backup, **kw) -> dict:
    state, _ = elab
    return {"Engine": "aurora-mysql", "EngineVersion": "8.0.mysql_aurora.3.08.0", "MasterUsername": "admin",
            "MasterUserPassword": state.passwords["aurora_admin"], "SourceEngine": "mysql",
            "SourceEngineVersion": "9.7.4", "S3BucketName": "lab-backups", "S3Prefix": "onprem/",
            "S3IngestionRoleArn": backup["role_arn"], "DBClusterParameterGroupName": "bidi-pg", **kw}


def test_restore_is_validated_like_aws(elab, aws, backup):
    rds = aws("rds")
    missing_role = "arn:aws:iam::123456789012:role/missing"
    for bad, code in ((dict(SourceEngineVersion="5.7.44"), "InvalidParameterCombination"),
                      (dict(DBClusterParameterGroupName="no-such-pg"), "DBParameterGroupNotFound"),
                      (dict(S3Prefix="nothing-here/"), "InvalidS3BucketFault"),
                      (dict(S3IngestionRoleArn=missing_role), "InvalidParameterValue")):
        with pytest.raises(ClientError) as err:
            rds.restore_db_cluster_from_s3(DBClusterIdentifier="bad", **restore_args(elab, backup, **bad))
        assert err.value.response["Error"]["Code"] == code, bad


def test_restore_of_an_xtrabackup_upload_fails_with_a_reason(elab, aws, backup):
    _, servers = elab
    uuid = query(servers["aurora"], "SELECT @@server_uuid AS u")[0]["u"]
    for key in ("xtrabackup_checkpoints", "ibdata1", "mysql.ibd"):
        aws("s3").put_object(Bucket="lab-backups", Key=f"xb/{key}", Body=b"not really")
    aws("rds").restore_db_cluster_from_s3(DBClusterIdentifier="xb",
                                          **restore_args(elab, backup, S3Prefix="xb/"))
    wait_for("the xtrabackup restore to fail", lambda: cluster(aws, "xb")["Status"] == "failed", 20)
    assert any("XtraBackup" in m for m in events(aws, "xb"))
    assert query(servers["aurora"], "SELECT @@server_uuid AS u")[0]["u"] == uuid     # untouched


@pytest.fixture(scope="module")
def restored(elab, aws, backup) -> dict:
    """Cluster ``bidi`` restored from the clone, with two instances (bidi-1 the writer)."""
    rds = aws("rds")
    created = rds.restore_db_cluster_from_s3(DBClusterIdentifier="bidi", **restore_args(elab, backup))
    wait_for("the restore", lambda: cluster(aws)["Status"] != "creating", 90, 0.5)
    for instance in ("bidi-1", "bidi-2"):
        rds.create_db_instance(DBInstanceIdentifier=instance, DBClusterIdentifier="bidi",
                               Engine="aurora-mysql", DBInstanceClass="db.r6g.large")
    return created["DBCluster"]


def test_restore_from_s3_of_a_clone(elab, aws, backup, restored):
    state, servers = elab
    aurora = servers["aurora"]
    assert restored["Status"] == "creating" and cluster(aws)["Status"] == "available"
    got = query(aurora, "SELECT @@gtid_executed AS gtids, @@server_uuid AS uuid, @@log_bin AS log_bin, "
                        "@@binlog_format AS fmt, @@gtid_mode AS gtid_mode, "
                        "@@auto_increment_increment AS inc, @@log_bin_basename AS base")[0]
    assert got["gtids"] == backup["gtids"] and backup["uuid"] in got["gtids"]     # the source's history
    assert got["uuid"] != backup["uuid"]
    assert (got["log_bin"], got["fmt"], got["gtid_mode"], got["inc"]) == (1, "ROW", "ON", 2)   # the group
    assert got["base"].endswith("mysql-bin-changelog")
    assert query(aurora, "SELECT COUNT(*) AS n FROM tenant_acme.orders")[0]["n"] == backup["orders"]
    accounts = {r["User"] for r in query(aurora, "SELECT User FROM mysql.user")}
    assert "admin" in accounts and not {"crm_app", "dba"} & accounts          # users are not carried
    assert not query(aurora, "SELECT 1 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'app_billing'")
    with admin(elab) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER() AS me")
        assert cur.fetchone()["me"] == "admin@%"
    assert (cluster(aws)["Endpoint"], cluster(aws)["Port"]) == ("127.0.0.1", state.aurora_port)
    assert "Restored DB cluster from Amazon S3" in events(aws)


def test_group_changes_apply_online_or_at_reboot(elab, aws, restored):
    _, servers = elab
    rds = aws("rds")
    rds.modify_db_cluster_parameter_group(DBClusterParameterGroupName="bidi-pg", Parameters=[
        {"ParameterName": "binlog_rows_query_log_events", "ParameterValue": "1", "ApplyMethod": "immediate"},
        {"ParameterName": "binlog_format", "ParameterValue": "MIXED", "ApplyMethod": "pending-reboot"}])
    now = query(servers["aurora"], "SELECT @@binlog_rows_query_log_events AS rq, @@binlog_format AS fmt")[0]
    assert (now["rq"], now["fmt"]) == (1, "ROW")                 # dynamic: now; static: at the reboot
    assert group_status(aws) == {"pending-reboot"}
    rebooting = rds.reboot_db_instance(DBInstanceIdentifier="bidi-1")["DBInstance"]
    assert rebooting["DBInstanceStatus"] == "rebooting"
    wait_for("the reboot", lambda: rds.describe_db_instances(DBInstanceIdentifier="bidi-1")
             ["DBInstances"][0]["DBInstanceStatus"] == "available", 60)
    assert query(servers["aurora"], "SELECT @@binlog_format AS fmt")[0]["fmt"] == "MIXED"
    assert group_status(aws) == {"in-sync"}


@pytest.fixture(scope="module")
def replicating(elab, restored) -> None:
    """aurora replicates from onprem, set up through the stand-in's mysql.rds_* procedures."""
    state, servers = elab
    password = state.passwords["replicator"]
    with servers["onprem"].connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute("CREATE USER 'replicator'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'replicator'@'%'")
    with admin(elab) as conn, conn.cursor() as cur:
        cur.execute("CALL mysql.rds_set_external_source_with_auto_position("
                    "'127.0.0.1', %s, 'replicator', %s, 0)", (servers["onprem"].port, password))
        cur.execute("CALL mysql.rds_set_binlog_source_ssl(1)")    # ssl_encryption is not implemented
        cur.execute("CALL mysql.rds_start_replication")
    wait_for("replication onprem -> aurora", lambda: query(servers["aurora"], RUNNING), 20)


def test_failover_refuses_then_read_only_then_writable(elab, aws, replicating):
    _, servers = elab
    onprem, aurora = servers["onprem"], servers["aurora"]
    answered = aws("rds").failover_db_cluster(DBClusterIdentifier="bidi", TargetDBInstanceIdentifier="bidi-2")
    assert answered["DBCluster"]["Status"] == "failing-over"
    outcomes, started = [], time.monotonic()
    while time.monotonic() - started < 30 and not (len(outcomes) > 1 and outcomes[-1] == "ok"):
        try:
            with admin(elab, connect_timeout=1) as conn, conn.cursor() as cur:
                cur.execute(INSERT, ("aurora",))
            outcome = "ok"
        except pymysql.err.MySQLError as e:
            outcome = e.args[0]
        if outcomes[-1:] != [outcome]:
            outcomes.append(outcome)
        time.sleep(0.1)
    while outcomes[0] == "ok":                  # writes that landed before the crash
        outcomes.pop(0)
    assert 2003 in outcomes and 1290 in outcomes and outcomes[-1] == "ok", outcomes   # refused, read-only, ok
    assert outcomes.index(2003) < outcomes.index(1290)
    wait_for("status available", lambda: cluster(aws)["Status"] == "available", 10)
    assert writers(aws) == ["bidi-2"]
    assert "Completed failover to DB instance: bidi-2" in events(aws)
    wait_for("the replication channel back", lambda: query(aurora, RUNNING), 20)
    with onprem.connect() as conn, conn.cursor() as cur:
        cur.execute(INSERT, ("after-failover",))
    wait_for("onprem's row on aurora", lambda: query(
        aurora, "SELECT 1 FROM tenant_acme.orders WHERE sku = 'after-failover'"), 20,
        detail=lambda: replica_errors(aurora))


def test_replica_lag_metric_is_published(aws, replicating):
    cw = aws("cloudwatch")

    def points(name: str, value: str) -> list[dict]:
        now = datetime.now(timezone.utc)
        return cw.get_metric_statistics(
            Namespace="AWS/RDS", MetricName="AuroraBinlogReplicaLag",
            Dimensions=[{"Name": name, "Value": value}],
            StartTime=now - timedelta(minutes=10), EndTime=now + timedelta(minutes=1), Period=60,
            Statistics=["Minimum", "Maximum", "SampleCount"])["Datapoints"]

    def replicating_seen(name: str, value: str) -> list[dict]:
        got = points(name, value)
        return got if max((p["Maximum"] for p in got), default=-1) >= 0 else []

    for name, value in (("DBClusterIdentifier", "bidi"), ("DBInstanceIdentifier", writers(aws)[0])):
        got = wait_for(f"AuroraBinlogReplicaLag >= 0 for {value}",
                       lambda name=name, value=value: replicating_seen(name, value), 10)
        assert all(p["Unit"] == "Seconds" for p in got)
    # before replication was set up, the cluster's lag was -1 (replication not running)
    assert min(p["Minimum"] for p in points("DBClusterIdentifier", "bidi")) == -1.0


def test_create_db_cluster_restarts_the_server_with_its_group(elab, aws):
    _, servers = elab
    created = aws("rds").create_db_cluster(DBClusterIdentifier="plain", Engine="aurora-mysql",
                                           EngineVersion="8.0.mysql_aurora.3.08.0", MasterUsername="admin",
                                           MasterUserPassword="not-used-by-the-lab")
    assert created["DBCluster"]["Status"] == "creating"
    wait_for("the new cluster", lambda: cluster(aws, "plain")["Status"] == "available", 60)
    now = query(servers["aurora"], "SELECT @@log_bin AS log_bin, @@gtid_mode AS gtid_mode")[0]
    assert (now["log_bin"], now["gtid_mode"]) == (0, "OFF_PERMISSIVE")      # default.aurora-mysql8.0
    assert cluster(aws, "plain")["DBClusterParameterGroup"] == "default.aurora-mysql8.0"
