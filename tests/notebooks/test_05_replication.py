"""Notebook 05_replication on the lab, after phases 1-4: what it does on both servers.

Order matters (pytest runs them top to bottom): without approvals first (nothing may change), then the
approved run of the pipeline, its second run, and a wrong replication password, which ends with a
good run again so that later phases find both directions running.
"""
from __future__ import annotations

import time

import pytest
from papermill.exceptions import PapermillExecutionError

from tests.notebooks.conftest import outputs_text
from tests.support import gtids, last_output, query, replica_status, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.notebooks]

STEM = "05_replication"
ACCOUNT = "'replicator'@'%'"


def grants(lab, name: str) -> list[str]:
    return sorted(next(iter(r.values())) for r in query(lab.instances[name], f"SHOW GRANTS FOR {ACCOUNT}"))


def account_exists(lab, name: str) -> bool:
    return bool(query(lab.instances[name],
                      "SELECT 1 FROM mysql.user WHERE User = 'replicator' AND Host = '%'"))


def test_without_approvals_nothing_is_configured(pipeline, lab):
    pipeline.through("04_backup_restore")
    before = {n: gtids(lab.instances[n]) for n in ("onprem", "aurora")}
    with pytest.raises(PapermillExecutionError) as exc:
        pipeline.run(STEM, pipeline.params_file(approvals=[]))
    assert exc.value.ename == "NotApplied" and "replication in both directions" in exc.value.evalue
    text = last_output(pipeline, STEM)
    assert "SKIPPED: step 'replication_users' not approved" in text
    assert "SKIPPED: step 'replication' not approved" in text
    assert "FAIL: bi-directional replication" in text
    assert {n: gtids(lab.instances[n]) for n in ("onprem", "aurora")} == before
    assert replica_status(lab.instances["onprem"]) == {} and replica_status(lab.instances["aurora"]) == {}
    assert not account_exists(lab, "onprem") and not account_exists(lab, "aurora")


def test_approved_run_replicates_both_ways(pipeline, lab):
    nb = pipeline.through(STEM)[STEM]
    text = outputs_text(nb)
    assert "PASS: bi-directional replication" in text and "PASS: canary" in text
    assert lab.password("replicator") not in text
    p = pipeline.params
    for replica, port, retry in (("aurora", p["source_port"], None), ("onprem", p["aurora_port"],
                                                                       p["replication_connect_retry"])):
        s = replica_status(lab.instances[replica])
        assert (s["Replica_IO_Running"], s["Replica_SQL_Running"], s["Auto_Position"]) == ("Yes", "Yes", 1)
        assert (s["Source_Port"], s["Source_User"], s["Source_SSL_Allowed"]) == (port, "replicator", "Yes")
        assert retry is None or s["Connect_Retry"] == retry
        assert s["Last_IO_Errno"] == 0 and s["Last_SQL_Errno"] == 0
    expected = ["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `replicator`@`%`"]
    assert grants(lab, "onprem") == grants(lab, "aurora") == expected
    retention = query(lab.instances["aurora"], "SELECT value FROM mysql.rds_configuration "
                                               "WHERE name = 'binlog retention hours'")[0]["value"]
    assert retention == str(p["aurora_binlog_retention_hours"])


def test_rows_written_on_either_side_reach_the_other(pipeline, lab):
    pipeline.through(STEM)
    stamp = time.time_ns() % 10**9
    marks = {"onprem": f"t05s{stamp}", "aurora": f"t05a{stamp}"}       # sku is VARCHAR(20)
    for name, sku in marks.items():
        query(lab.instances[name], "INSERT INTO tenant_acme.orders (sku, qty, placed_at) "
                                   "VALUES (%s, 1, NOW())", (sku,))
    ids = {}
    for writer, reader in (("onprem", "aurora"), ("aurora", "onprem")):
        rows = wait_for(f"{writer}'s row on {reader}", lambda: query(
            lab.instances[reader], "SELECT id FROM tenant_acme.orders WHERE sku = %s", (marks[writer],)))
        ids[writer] = rows[0]["id"]
    assert ids["onprem"] % 2 == 0 and ids["aurora"] % 2 == 1        # the offsets keep them apart


def test_second_run_changes_nothing_but_the_canary(pipeline, lab):
    pipeline.through(STEM)
    wait_for("both sides equal", lambda: gtids(lab.instances["onprem"]) == gtids(lab.instances["aurora"]))
    before = {n: gtids(lab.instances[n]) for n in ("onprem", "aurora")}
    canary_rows = query(lab.instances["onprem"], "SELECT COUNT(*) AS n FROM runbook.canary")[0]["n"]
    text = outputs_text(pipeline.run(STEM))
    assert "replication account replicator@%: nothing to do (step 'replication_users')" in text
    assert "bi-directional replication: nothing to do (step 'replication')" in text
    wait_for("both sides equal", lambda: gtids(lab.instances["onprem"]) == gtids(lab.instances["aurora"]))
    new = {n: gtids(lab.instances[n]) - before[n] for n in ("onprem", "aurora")}
    # the run wrote exactly its two canary rows, one on each side, and both sides have both
    assert new["onprem"] == new["aurora"] and new["onprem"].count() == 2
    assert len(new["onprem"].uuids()) == 2
    for name in ("onprem", "aurora"):
        assert query(lab.instances[name], "SELECT COUNT(*) AS n FROM runbook.canary")[0]["n"] == \
            canary_rows + 2


def test_unreachable_aurora_stops_the_first_cell_and_changes_nothing(pipeline, lab):
    pipeline.through(STEM)
    before = gtids(lab.instances["onprem"])
    wrong_port = lab.state.port_base + 50
    with pytest.raises(PapermillExecutionError) as exc:
        pipeline.run(STEM, pipeline.params_file(aurora_port=wrong_port))
    assert exc.value.ename == "ConnectionFailed"
    assert f"127.0.0.1:{wrong_port}" in exc.value.evalue and "refused" in exc.value.evalue
    assert "users = replication.plan_replication_users(rb)" in exc.value.source   # the first cell using it
    assert gtids(lab.instances["onprem"]) == before


def test_wrong_replication_password_fails_with_the_io_error(pipeline, lab, monkeypatch):
    pipeline.through(STEM)
    for name in ("onprem", "aurora"):                  # as if the channels were never configured
        query(lab.instances[name], "STOP REPLICA")
        query(lab.instances[name], "RESET REPLICA ALL")
    wrong = "Not-The-Replicator-Password-05"
    monkeypatch.setenv("RUNBOOK_TEST_WRONG_REPLICATION_PASSWORD", wrong)
    try:
        with pytest.raises(PapermillExecutionError) as exc:
            pipeline.run(STEM, pipeline.params_file(
                replication_password="env:RUNBOOK_TEST_WRONG_REPLICATION_PASSWORD"))
        assert exc.value.ename == "ReplicationError"
        assert "1045" in exc.value.evalue and "replication_password" in exc.value.evalue
        text = last_output(pipeline, STEM)
        assert "FAIL: bi-directional replication" in text and "Access denied for user 'replicator'" in text
        assert wrong not in text
        assert [replica_status(s)["Last_IO_Errno"] for s in lab.instances.values()] == [1045, 1045]
    finally:
        text = outputs_text(pipeline.run(STEM))            # the right secret repairs both channels
    assert "cannot log in (error 1045)" in text and "PASS: bi-directional replication" in text
    for name in ("onprem", "aurora"):
        s = replica_status(lab.instances[name])
        assert (s["Replica_IO_Running"], s["Replica_SQL_Running"], s["Last_IO_Errno"]) == ("Yes", "Yes", 0)
