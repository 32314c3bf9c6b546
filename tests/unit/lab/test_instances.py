"""The lab's DB instance identities (runbook_lib.lab.instances): files only, no server."""
from __future__ import annotations

from types import SimpleNamespace

from runbook_lib.lab.aurora_wiring import metric_dimensions
from runbook_lib.lab.instances import InstanceIdentities, instance_server_id
from runbook_lib.lab.servers import MysqldInstance, Runner

UUID1 = "11111111-2222-3333-4444-555555555555"


def test_a_failover_makes_another_identity_and_failing_back_restores_the_first(tmp_path):
    aurora = MysqldInstance("aurora", 1, 1977146520, tmp_path / "aurora", Runner(), "x")
    aurora.datadir.mkdir(parents=True)
    aurora.write_option_file()
    (aurora.datadir / "auto.cnf").write_text(f"[auto]\nserver-uuid={UUID1}\n")
    ids = InstanceIdentities(aurora)
    ids.leave("db-1")
    ids.assume("db-2")                               # first time the writer: own id, no auto.cnf (new uuid)
    assert not (aurora.datadir / "auto.cnf").exists()
    second = int(aurora.read_overrides()["server-id"])
    assert second not in (1977146520, 0) and second == instance_server_id("db-2", {1977146520})
    (aurora.datadir / "auto.cnf").write_text("[auto]\nserver-uuid=22222222-2222-3333-4444-555555555555\n")
    ids.started("db-2")
    ids.leave("db-2")
    ids.assume("db-1")                               # back: the first writer's ids again
    assert ids.current().server_id == 1977146520 and ids.current().server_uuid == UUID1
    assert ids.known()["db-2"].server_id == second
    ids.forget()
    assert ids.known() == {} and "server-id" not in aurora.read_overrides()


def test_the_writer_metric_is_published_under_every_aurora_dimension():
    writer = SimpleNamespace(db_instance_identifier="db-2", db_instance_class="db.r6g.large")
    cluster = SimpleNamespace(db_cluster_identifier="c1", engine="aurora-mysql", writer=writer)
    dims = [{(d["Name"], d["Value"]) for d in one} for one in metric_dimensions(cluster)]
    assert {("DBClusterIdentifier", "c1"), ("Role", "WRITER")} in dims
    assert {("DBInstanceIdentifier", "db-2")} in dims and {("DBClusterIdentifier", "c1")} in dims
    assert {("DatabaseClass", "db.r6g.large")} in dims and {("EngineName", "aurora-mysql")} in dims
    assert {("DBClusterIdentifier", "c1"), ("EngineName", "aurora-mysql")} in dims
    assert not any(("Role", "READER") in d for d in dims)        # AuroraBinlogReplicaLag: the primary only
