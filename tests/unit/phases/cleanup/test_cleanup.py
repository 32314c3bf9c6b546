"""Planning of the clean-up (pure): given what exists, which steps in which order, what is kept."""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from runbook_lib.context.params import load_parameters
from runbook_lib.core.errors import CheckFailed, ParameterError, RunbookError
from runbook_lib.mysql.identity import Flavor, ServerIdentity
from runbook_lib.phases.cleanup import inventory, plan
from runbook_lib.phases.cleanup import steps as cleanup
from runbook_lib.phases.cleanup.plan import Channel, ClusterInfo, Found, Instance
from tests.support import REPO

P = load_parameters(REPO / "parameters" / "lab.yaml")
WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
SOURCE = ServerIdentity((9, 7, 4), "9.7.4", "MySQL Community Server - GPL", Flavor.MYSQL84_PLUS, server_id=1)
AURORA3 = ServerIdentity((8, 0, 39), "8.0.39", "Source distribution", Flavor.AURORA3, "3.08.0", server_id=2)
AURORA2 = dataclasses.replace(AURORA3, version=(5, 7, 12), version_text="5.7.12", flavor=Flavor.AURORA2,
                              aurora_version="2.12.1")
TO_AURORA = Channel("aurora", f"127.0.0.1:{P.source_port}", "Yes", "Yes", "running", True)
TO_SOURCE = Channel("source", f"127.0.0.1:{P.aurora_port}", "Yes", "Yes", "running", True)
CLUSTER = ClusterInfo(P.aurora_cluster_id, "available", P.aurora_parameter_group, False,
                      (Instance(P.aurora_writer_instance, True, "available", True),
                       Instance(P.aurora_reader_instance, False, "available", True)))
EVERYTHING = Found(SOURCE, AURORA3, channels=(TO_AURORA, TO_SOURCE), accounts=("source", "aurora"),
                   cluster=CLUSTER, group_exists=True, group_users=(P.aurora_cluster_id,), bucket=P.s3_bucket,
                   s3_objects=3, s3_bytes=3 * 2**20, local=("/tmp/b/20250101T000000Z",), local_bytes=2**20)
NOTHING = Found(SOURCE)
SNAPSHOT = "runbook-aurora-final-20250304-050607"


def opts(**kw) -> plan.Settings:
    return plan.settings(P, now=WHEN, **kw)


def details(d: plan.Decision) -> list[str]:
    return [f"{a.action}: {a.detail}" for a in d.actions]


def test_everything_exists_plans_every_step_in_order():
    d = plan.decide(EVERYTHING, P, opts())
    assert list(d) == list(plan.RESOURCES)
    assert {r: (x.verdict, x.after) for r, x in d.items()} == {
        "replication": ("delete", ""), "accounts": ("delete", "replication"),
        "cluster": ("delete", "replication"), "parameter_group": ("delete", "cluster"),
        "backup": ("delete", "")}
    # Aurora through its procedures first, then the source's own statements, only the default channel
    assert [(a.role, str(a.sql)) for a in d["replication"].actions] == [
        ("aurora", "CALL mysql.rds_stop_replication"), ("aurora", "CALL mysql.rds_reset_external_source"),
        ("source", "STOP REPLICA FOR CHANNEL ''"), ("source", "RESET REPLICA ALL FOR CHANNEL ''")]
    # dropped on EACH side: with the channels reset, one drop no longer replicates to the other
    assert [(a.role, str(a.sql)) for a in d["accounts"].actions] == [
        ("source", "DROP USER IF EXISTS 'replicator'@'%'"),
        ("aurora", "DROP USER IF EXISTS 'replicator'@'%'")]
    # readers first, each waited for, then the writer, then the cluster with a dated final snapshot
    assert [(a.kind, a.arg if a.kind.startswith("wait") else a.arg[0]) for a in d["cluster"].actions] == [
        ("aws", "delete_db_instance"), ("wait_instance", P.aurora_reader_instance),
        ("aws", "delete_db_instance"), ("wait_instance", P.aurora_writer_instance),
        ("aws", "delete_db_cluster"), ("wait_cluster", P.aurora_cluster_id)]
    assert d["cluster"].actions[0].arg[1] == {"DBInstanceIdentifier": P.aurora_reader_instance}
    assert d["cluster"].actions[4].arg[1] == {"DBClusterIdentifier": P.aurora_cluster_id,
                                              "FinalDBSnapshotIdentifier": SNAPSHOT}
    assert d["cluster"].actions[4].step.reversible
    assert d["parameter_group"].actions[0].arg == ("delete_db_cluster_parameter_group",
                                                   {"DBClusterParameterGroupName": P.aurora_parameter_group})
    assert [a.kind for a in d["backup"].actions] == ["s3", "local"]
    assert details(d["backup"])[0] == ("DeleteObjects: 3 objects (3.0 MiB) under "
                                       "s3://runbook-lab-backups/backup/")
    versioned = plan.decide(dataclasses.replace(EVERYTHING, versioned=True), P, opts())["backup"]
    assert "noncurrent versions stay" in versioned.actions[0].detail


def test_the_inventory_numbers_the_rows_in_the_order_of_deletion():
    rows = inventory.build_rows(EVERYTHING, P, opts())
    table = [(r.order, r.resource, r.step) for r in rows]
    assert table == [
        (1, "replication channel source → aurora", "cleanup:replication"),
        (2, "replication channel aurora → source", "cleanup:replication"),
        (3, "account replicator@%", "cleanup:accounts (after cleanup:replication)"),
        (4, "account replicator@%", "cleanup:accounts (after cleanup:replication)"),
        (5, "instance runbook-aurora-2 (reader)", "cleanup:cluster (after cleanup:replication)"),
        (6, "instance runbook-aurora-1 (writer)", "cleanup:cluster (after cleanup:replication)"),
        (7, "cluster runbook-aurora", "cleanup:cluster (after cleanup:replication)"),
        (8, "parameter group runbook-bidir-aurora8", "cleanup:parameter_group (after cleanup:cluster)"),
        (9, "backup objects in S3", "cleanup:backup"), (10, "local backup", "cleanup:backup")]
    inv = inventory.Inventory(rows, EVERYTHING, opts())
    assert list(inv.to_frame().columns) == ["#", "resource", "where", "state", "deleting it", "approval step"]
    assert "final snapshot runbook-aurora-final-20250304-050607" in inv.to_frame().loc[6, "deleting it"]
    assert inv.summary() == ("10 resource(s) exist; to delete, in order: cleanup:replication, "
                             "cleanup:accounts, cleanup:cluster, cleanup:parameter_group, cleanup:backup")
    with pytest.raises(CheckFailed) as e:                    # all of it is still there
        inv.require_clean()
    assert len(e.value.failed) == 10 and inv.verdict().startswith("FAIL: clean-up: 10 of 10")


def test_aurora_2_uses_its_generations_procedure_and_a_stopped_channel_is_only_reset():
    stopped = dataclasses.replace(TO_AURORA, io="No", sql="No", state="stopped")
    found = dataclasses.replace(EVERYTHING, aurora=AURORA2, channels=(stopped, dataclasses.replace(
        TO_SOURCE, io="No", sql="Yes", state="error")))
    d = plan.decide(found, P, opts())["replication"]
    assert [str(a.sql) for a in d.actions] == [
        "CALL mysql.rds_reset_external_master", "STOP REPLICA FOR CHANNEL ''",
        "RESET REPLICA ALL FOR CHANNEL ''"]


def test_channels_from_other_hosts_are_not_the_runbooks():
    other = dataclasses.replace(TO_SOURCE, source="10.1.2.3:3306", ours=False)
    found = dataclasses.replace(EVERYTHING, channels=(other,))
    d = plan.decide(found, P, opts())
    assert d["replication"].verdict == "absent" and d["accounts"].after == "" and d["cluster"].after == ""
    row = inventory.build_rows(found, P, opts())[1]
    assert (row.outcome, row.order) == ("other", None)
    assert row.step == "left alone: not from the peer the parameters name"
    left = inventory.Inventory(inventory.build_rows(found, P, opts()), found, opts()).left()[1]
    assert (left.status, left.wanted) == ("info", "kept")


def test_keep_cluster_after_a_cut_over_retires_only_the_source_side():
    d = plan.decide(EVERYTHING, P, opts(keep=["cluster"]))
    assert {r: x.verdict for r, x in d.items()} == {"replication": "delete", "accounts": "delete",
                                                    "cluster": "kept", "parameter_group": "kept",
                                                    "backup": "delete"}
    assert d["parameter_group"].why == "cluster runbook-aurora uses it and is kept"
    rows = inventory.build_rows(EVERYTHING, P, opts(keep=["cluster"]))
    kept = [r.step for r in rows if r.resource.startswith(("instance", "cluster"))]
    assert kept == ["kept: listed in keep"] * 3


def test_keeping_replication_keeps_what_it_needs():
    d = plan.decide(EVERYTHING, P, opts(keep=["replication"]))
    assert {r: (x.verdict, x.why) for r, x in d.items() if r != "backup"} == {
        "replication": ("kept", "listed in keep"),
        "accounts": ("kept", "the kept replication channels log in with it"),
        "cluster": ("kept", "the kept replication channels use it"),
        "parameter_group": ("kept", "cluster runbook-aurora uses it and is kept")}
    assert d["backup"].verdict == "delete"


def test_final_snapshot_false_skips_it_and_says_the_data_is_lost():
    d = plan.decide(EVERYTHING, P, opts(final_snapshot=False))["cluster"]
    delete = d.actions[4]
    assert delete.arg == ("delete_db_cluster", {"DBClusterIdentifier": P.aurora_cluster_id,
                                                "SkipFinalSnapshot": True})
    assert not delete.step.reversible and "its data is lost" in delete.detail
    rows = inventory.build_rows(EVERYTHING, P, opts(final_snapshot=False))
    assert "ALL its data are deleted for good" in rows[6].effect


@pytest.mark.parametrize("change, why", [
    ({"deletion_protection": True}, "deletion protection on"),
    ({"instances": CLUSTER.instances + (Instance("someone-elses", False, "available", False),)},
     "instances the parameters do not name: someone-elses")])
def test_a_protected_cluster_or_one_with_unnamed_instances_is_refused(change, why):
    found = dataclasses.replace(EVERYTHING, cluster=dataclasses.replace(CLUSTER, **change))
    d = plan.decide(found, P, opts())
    assert d["cluster"].verdict == "refused" and why in d["cluster"].why
    assert d["parameter_group"].verdict == "kept"        # the cluster that uses it stays


def test_a_group_used_by_another_cluster_is_refused():
    found = dataclasses.replace(EVERYTHING, group_users=(P.aurora_cluster_id, "other-cluster"))
    d = plan.decide(found, P, opts())["parameter_group"]
    assert d.verdict == "refused" and "other-cluster" in d.why


def test_instances_already_deleting_are_only_waited_for_and_a_gone_cluster_frees_the_group():
    deleting = dataclasses.replace(CLUSTER, instances=tuple(dataclasses.replace(i, status="deleting")
                                                            for i in CLUSTER.instances))
    d = plan.decide(dataclasses.replace(EVERYTHING, cluster=deleting), P, opts())["cluster"]
    assert [a.kind for a in d.actions] == ["wait_instance", "wait_instance", "aws", "wait_cluster"]
    gone = dataclasses.replace(NOTHING, group_exists=True)
    assert plan.decide(gone, P, opts())["parameter_group"].after == ""


def test_nothing_left_plans_nothing_and_passes():
    d = plan.decide(NOTHING, P, opts())
    assert {x.verdict for x in d.values()} == {"absent"} and not any(x.actions for x in d.values())
    found = dataclasses.replace(NOTHING, bucket=P.s3_bucket, final_snapshots=(SNAPSHOT,))
    inv = inventory.Inventory(inventory.build_rows(found, P, opts()), found, opts())
    assert {r.step for r in inv.rows} == {"nothing to do"} and all(r.order is None for r in inv.rows)
    unread = "not read: no cluster, Aurora's side is gone with it"
    assert [r.state for r in inv.rows[:4]] == [unread, "absent", "absent", unread]
    assert inv.summary() == "0 resource(s) exist; to delete, in order: nothing"
    inv.require_clean()
    assert inv.verdict() == "PASS: clean-up: all 8 checks passed"
    frame = inv.left_frame()
    assert list(frame.columns) == ["resource", "where", "now", "wanted", "ok", "advice"]
    assert list(frame["resource"][-2:]) == [f"final snapshot {SNAPSHOT}", "S3 bucket"]


def test_settings_check_the_knobs():
    s = opts(keep=["cluster", "parameter_group"], final_snapshot=False, timeout_minutes=5)
    assert (s.keep, s.final_snapshot, s.timeout_minutes) == ({"cluster", "parameter_group"}, False, 5.0)
    for kw, name in (({"keep": ["clusters"]}, "keep"), ({"keep": "cluster"}, "keep"),
                     ({"final_snapshot": "yes"}, "final_snapshot"),
                     ({"timeout_minutes": 0}, "timeout_minutes")):
        with pytest.raises(ParameterError) as e:
            opts(**kw)
        assert e.value.name == name
    with pytest.raises(ParameterError) as e:
        plan.settings(dataclasses.replace(P, s3_prefix="/"))
    assert e.value.name == "s3_prefix" and "whole bucket" in str(e.value)


def test_snapshot_name_is_a_valid_identifier_from_the_cluster_and_the_date():
    assert plan.snapshot_name("Runbook-Aurora", WHEN) == "runbook-aurora-final-20250304-050607"
    assert plan.snapshot_name("a-", WHEN) == "a-final-20250304-050607"


def test_local_backups_are_only_what_the_runbook_wrote(tmp_path):
    name = "20250101T000000Z"
    (tmp_path / name).mkdir()
    (tmp_path / name / "ibdata1").write_bytes(b"x" * 1000)
    (tmp_path / f"{name}.runbook.json").write_text(json.dumps({"name": name}))
    (tmp_path / f"{name}.xtrabackup.log").write_text("completed OK!")
    (tmp_path / "20250102T000000Z").mkdir()                    # an unfinished backup: no manifest
    (tmp_path / "notes.txt").write_text("not the runbook's")
    (tmp_path / "other-folder").mkdir()
    paths, size = cleanup.local_backups(tmp_path)
    assert [Path(x).name for x in paths] == [name, f"{name}.runbook.json", f"{name}.xtrabackup.log",
                                             "20250102T000000Z"]
    assert size > 1000
    assert cleanup.local_backups(tmp_path / "missing") == ((), 0)
    assert cleanup._remove_local(str(tmp_path), paths) == "removed 4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "other-folder"]
    with pytest.raises(RunbookError, match="not inside backup_dir"):
        cleanup._remove_local(str(tmp_path / "other-folder"), [str(tmp_path / "notes.txt")])
