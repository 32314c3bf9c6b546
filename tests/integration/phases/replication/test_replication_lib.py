"""runbook_lib.phases.replication.steps against real servers: plans, applies, idempotence, re-planning of a channel
configured differently, a wrong password, the canary and the GTID wait.

The module builds a lab instance of its own (``<RUNBOOK_TEST_LAB>-repl``, port base
$RUNBOOK_TEST_REPL_PORT_BASE, default RUNBOOK_TEST_PORT_BASE + 20) and puts it, with labroot, in the
state phases 1-4 leave: GTIDs on the source (enabled online), Aurora started with GTIDs and a binary
log on a clone of the source (CLONE LOCAL DATA DIRECTORY), the stand-in installed again.  The library
must not care how the servers got there; the session's shared ``lab`` is not touched.
"""
from __future__ import annotations

import contextlib
import time

import pymysql
import pytest

from runbook_lib.checks import channels
from runbook_lib.context import session
from runbook_lib.core import errors
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.phases.replication import steps as r
from tests.support import (
    aurora_from_clone,
    gtids,
    own_lab,
    params_variant,
    prepare_source,
    query,
    replica_status,
)

pytestmark = pytest.mark.lab

ALL = ["replication_users", "replication"]


def forget_channels(servers) -> None:
    for inst in servers.values():
        query(inst, "STOP REPLICA")
        query(inst, "RESET REPLICA ALL")


@pytest.fixture(scope="module")
def rlab(tmp_path_factory):
    """(state, servers, params_file) of this module's lab instance, prepared as phases 1-4 leave it."""
    from runbook_lib.lab import inspect
    with own_lab("repl") as (state, servers):
        prepare_source(servers["onprem"])
        query(servers["onprem"], "INSERT INTO tenant_acme.orders (sku, qty, placed_at) "
                                 "VALUES ('pre-backup', 1, NOW())")
        aurora_from_clone(state, servers)
        params = inspect.write_params(state, tmp_path_factory.mktemp("repl") / "lab.yaml")
        yield state, servers, params_variant(params, approvals=[])        # approvals only as told


def open_rb(params_file, approve=ALL):
    return session.open_session(str(params_file), approve, quiet=True)


# --- tests, in order: they walk the phase once, then change things and walk it again ------------

def test_nothing_approved_plans_both_steps_and_changes_nothing(rlab):
    _, servers, params = rlab
    before = {n: gtids(i) for n, i in servers.items()}
    with open_rb(params, []) as rb:
        users = r.plan_replication_users(rb)
        frame = users.plan.to_frame()
        assert list(frame["target"]) == ["source", "source"]          # never planned on Aurora
        assert "IDENTIFIED WITH caching_sha2_password BY '********'" in frame["detail"][0]
        assert rb.replication_password() not in frame.to_string()
        assert rb.gate.apply(users.plan, users.apply).status == "skipped"
        change = r.plan_replication(rb)
        assert "apply step 'replication_users' first" in change.plan.notes
        details = "\n".join(s.detail for s in change.plan.steps)
        assert "rds_set_external_source_with_auto_position('127.0.0.1'" in details
        assert "'replicator', '********', 0)" in details       # ssl_encryption: not implemented on Aurora
        assert "CALL mysql.rds_set_binlog_source_ssl(1)" in details
        assert "caching_sha2_password; source → aurora TLS (mysql.rds_set_binlog_source_ssl(1))" in \
            change.plan.notes
        assert "SOURCE_AUTO_POSITION = 1, SOURCE_SSL = 1, SOURCE_CONNECT_RETRY = 2" in details
        assert rb.gate.apply(change.plan, change.apply).status == "skipped"
        with pytest.raises(errors.NotApplied, match="replication account replicator@% on the source"):
            change.apply()                                          # the Apply button, clicked too early
        with pytest.raises(errors.NotApplied) as exc:
            channels.require_running(rb)
        assert exc.value.step == "replication"
    assert {n: gtids(i) for n, i in servers.items()} == before
    assert not replica_status(servers["onprem"]) and not replica_status(servers["aurora"])


def test_apply_both_steps(rlab):
    _, servers, params = rlab
    src, aur = servers["onprem"], servers["aurora"]
    aurora_uuid = query(aur, "SELECT @@server_uuid AS u")[0]["u"]
    with open_rb(params) as rb:
        users = r.plan_replication_users(rb)
        users.apply()
        assert query(src, "SELECT COUNT(*) AS n FROM mysql.user WHERE user = 'replicator'")[0]["n"] == 1
        assert query(aur, "SELECT COUNT(*) AS n FROM mysql.user WHERE user = 'replicator'")[0]["n"] == 0
        change = r.plan_replication(rb, timeout=60)
        result = change.apply()
        assert list(result["result"])[-1] == "done" and "arrived after" in " ".join(result["result"])
        statuses = channels.require_running(rb, channels.directions(rb, settle=15))
        assert {d: s.running for d, s in statuses.items()} == {channels.TO_AURORA: True, channels.TO_SOURCE: True}
        assert [c.status for c in r.account_checks(rb)] == ["pass", "pass", "pass"]
        assert [c.status for c in r.retention_checks(rb)] == ["pass"]
    for inst, port, retry in ((aur, src.port, 60), (src, aur.port, 2)):
        s = replica_status(inst)
        assert (s["Replica_IO_Running"], s["Replica_SQL_Running"], s["Auto_Position"]) == ("Yes", "Yes", 1)
        assert (s["Source_Port"], s["Source_User"], s["Source_SSL_Allowed"], s["Connect_Retry"]) == \
            (port, "replicator", "Yes", retry)
    # the account reached Aurora by replication: Aurora has written nothing of its own
    assert aurora_uuid not in gtids(aur).uuids()
    assert query(aur, "SHOW GRANTS FOR 'replicator'@'%'") == query(src, "SHOW GRANTS FOR 'replicator'@'%'")


def test_second_plan_is_empty_and_the_canary_passes(rlab):
    _, servers, params = rlab
    with open_rb(params) as rb:
        assert r.plan_replication_users(rb).plan.is_empty
        assert r.plan_replication(rb).plan.is_empty
        before = {n: gtids(i) for n, i in servers.items()}
        results = r.canary(rb, timeout=20)
        assert [c.status for c in results] == ["pass", "pass"]
        assert "seen after" in results[0].aurora and "seen after" in results[1].source
        after = {n: gtids(i) for n, i in servers.items()}
        assert after["onprem"] == after["aurora"]
        assert (after["onprem"] - before["onprem"]).count() == 2       # exactly the two canary rows
        rows = query(servers["onprem"], "SELECT id, written_on FROM runbook.canary ORDER BY id")
        assert {(row["id"] % 2, row["written_on"]) for row in rows} == {(0, "source"), (1, "aurora")}


def test_wait_until_caught_up_names_what_is_missing(rlab):
    _, _, params = rlab
    with open_rb(params) as rb:
        mine = channels.executed_gtids(rb.source())
        assert channels.wait_until_caught_up(rb.aurora(), mine, timeout=10) < 10
        never = GtidSet("11111111-2222-3333-4444-555555555555:1-3")
        started = time.monotonic()
        with pytest.raises(errors.NotCaughtUp) as exc:
            channels.wait_until_caught_up(rb.aurora(), mine | never, timeout=1.5, poll=0.5)
        assert 1.4 < time.monotonic() - started < 5
        assert exc.value.missing == str(never) and "[aurora]" in str(exc.value)
        assert exc.value.cause.startswith("IO Yes, SQL Yes; no error, the applier is just behind by 3 "
                                          "transactions")           # what the channel reports, not a guess


def test_channels_configured_differently_are_planned_and_fixed(rlab):
    _, servers, params = rlab
    src, aur = servers["onprem"], servers["aurora"]
    for inst, change in ((src, "SOURCE_CONNECT_RETRY = 60"), (aur, f"SOURCE_PORT = {src.port + 50}")):
        for statement in ("STOP REPLICA", f"CHANGE REPLICATION SOURCE TO {change}", "START REPLICA"):
            query(inst, statement)
    with open_rb(params) as rb:
        change = r.plan_replication(rb)
        actions = [(s.target, s.action) for s in change.plan.steps]
        assert actions == [("aurora", "stop replication (source → aurora)"),
                           ("aurora", f"replicate from 127.0.0.1:{src.port} (source → aurora)"),
                           ("aurora", "TLS on (source → aurora)"),
                           ("aurora", "start replication (source → aurora)"),
                           ("source", "stop replication (aurora → source)"),
                           ("source", f"replicate from 127.0.0.1:{aur.port} (aurora → source)"),
                           ("source", "start replication (aurora → source)")]
        assert f"source port {src.port + 50} (wanted {src.port})" in change.plan.notes
        assert "connect retry 60 (wanted 2)" in change.plan.notes
        change.apply()
        channels.require_running(rb, channels.directions(rb, settle=15))
        assert r.plan_replication(rb).plan.is_empty


def test_a_stale_plan_is_refused(rlab):
    _, servers, params = rlab
    with open_rb(params) as rb:
        query(servers["onprem"], "STOP REPLICA")
        change = r.plan_replication(rb)
        assert [s.action for s in change.plan.steps] == ["start replication (aurora → source)"]
        query(servers["onprem"], "START REPLICA")
        with pytest.raises(errors.PlanStale):
            change.apply()
        assert r.plan_replication(rb).plan.is_empty


def test_extra_privileges_are_revoked_on_the_source_and_replicate(rlab):
    _, servers, params = rlab
    src, aur = servers["onprem"], servers["aurora"]
    query(src, "GRANT SELECT, BACKUP_ADMIN ON *.* TO 'replicator'@'%'")
    with open_rb(params) as rb:
        wait_until = channels.executed_gtids(rb.source())
        channels.wait_until_caught_up(rb.aurora(), wait_until, timeout=20)
        assert [c.status for c in r.account_checks(rb)][1] == "fail"
        users = r.plan_replication_users(rb)
        assert [s.detail for s in users.plan.steps] == \
            ["REVOKE BACKUP_ADMIN, SELECT ON *.* FROM 'replicator'@'%'"]
        users.apply()
        channels.wait_until_caught_up(rb.aurora(), channels.executed_gtids(rb.source()), timeout=20)
        assert [c.status for c in r.account_checks(rb)] == ["pass", "pass", "pass"]
    assert query(aur, "SHOW GRANTS FOR 'replicator'@'%'") == query(src, "SHOW GRANTS FOR 'replicator'@'%'")


def test_wrong_password_shows_the_io_error_then_the_right_one_repairs(rlab, monkeypatch):
    _, servers, params = rlab
    forget_channels(servers)
    monkeypatch.setenv("RUNBOOK_TEST_WRONG_REPLICATION_PASSWORD", "Not-The-Replicator-Password")
    wrong = params.with_name("wrong.yaml")
    wrong.write_text(params.read_text().replace("secretsmanager:runbook-lab/replicator",
                                                "env:RUNBOOK_TEST_WRONG_REPLICATION_PASSWORD"))
    with open_rb(wrong) as rb:
        result = r.plan_replication(rb).apply()
        assert any("IO error 1045" in x for x in result["result"])     # Aurora's start procedure reported it
        statuses = channels.directions(rb, settle=15)
        assert all(s.last_io_errno == 1045 for s in statuses.values())
        with pytest.raises(errors.ReplicationError) as exc:
            channels.show_directions(rb, statuses)
        assert exc.value.errno == 1045 and "replication_password" in str(exc.value)
        assert "Not-The-Replicator-Password" not in str(exc.value)
    with open_rb(params) as rb:
        change = r.plan_replication(rb)
        assert "cannot log in (error 1045)" in change.plan.notes
        change.apply()
        channels.require_running(rb, channels.directions(rb, settle=15))


def test_channel_without_tls_fails_with_2061_and_the_rerun_restores_tls(rlab):
    """caching_sha2_password on a channel without TLS: error 2061, whatever the password (MySQL 9.7 shows it
    once the server's authentication cache is empty); the advice says so; phase 05 re-plans the TLS."""
    state, servers, params = rlab
    src, aur = servers["onprem"], servers["aurora"]
    admin = {"user": "admin", "password": state.passwords["aurora_admin"]}
    query(aur, "CALL mysql.rds_stop_replication", **admin)
    query(aur, "CALL mysql.rds_set_binlog_source_ssl(0)", **admin)
    query(src, "FLUSH NO_WRITE_TO_BINLOG PRIVILEGES")             # empties caching_sha2_password's cache
    with contextlib.suppress(pymysql.err.MySQLError):     # Aurora's start fails when the channel does not run
        query(aur, "CALL mysql.rds_start_replication", **admin)
    with open_rb(params) as rb:
        status = channels.directions(rb, settle=15)[channels.TO_AURORA]
        assert (status.last_io_errno, status.ssl_allowed) == (2061, False), status.errors
        tip = channels.advice(channels.TO_AURORA, status)
        assert "without TLS" in tip and "password does not match" not in tip
        change = r.plan_replication(rb)
        assert "TLS False (wanted True)" in change.plan.notes
        assert "CALL mysql.rds_set_binlog_source_ssl(1)" in [s.detail for s in change.plan.steps]
        change.apply()
        channels.require_running(rb, channels.directions(rb, settle=15))
        assert r.plan_replication(rb).plan.is_empty


def test_replication_without_tls_is_refused_for_caching_sha2(rlab):
    _, _, params = rlab
    plain = params.with_name("plain.yaml")
    plain.write_text(params.read_text().replace("replication_ssl: true", "replication_ssl: false"))
    with open_rb(plain) as rb, pytest.raises(errors.ParameterError, match="replication_ssl"):
        r.plan_replication(rb)


def test_sequence_runs_of_57_and_80_agree_on_a_real_server(rlab):
    """The failover test's result query: 5.7 has no window functions, so its dialect finds the runs of
    consecutive seq another way; both forms give the same runs (run here on the lab's MySQL)."""
    from runbook_lib.mysql.dialect import dialect_for
    from runbook_lib.mysql.identity import Flavor, ServerIdentity
    _, servers, _ = rlab
    src = servers["onprem"]
    with src.connect() as conn, conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")             # stays on the source: nothing replicates
        cur.execute("CREATE DATABASE IF NOT EXISTS runbook_t")
        cur.execute("CREATE TABLE IF NOT EXISTS runbook_t.seq_runs (run_id INT, origin VARCHAR(8), seq INT, "
                    "UNIQUE KEY (run_id, origin, seq))")
        cur.execute("INSERT INTO runbook_t.seq_runs VALUES " + ", ".join(
            f"(1, '{o}', {n})" for o, seqs in (("source", [1, 2, 3, 7, 8, 10]), ("aurora", [1, 2, 5]))
            for n in seqs) + ", (2, 'source', 4)")
        runs = {}
        for version in ((5, 7, 44), (8, 0, 40)):
            ident = ServerIdentity(version, "", "", Flavor.MYSQL57 if version[0] == 5 else Flavor.MYSQL80)
            sql = dialect_for(ident).sequence_runs("runbook_t.seq_runs", 1)
            cur.execute(sql.text, sql.args)
            runs[version] = sorted((r["origin"], r["lo"], r["hi"]) for r in cur.fetchall())
        cur.execute("DROP DATABASE runbook_t")
    assert runs[(5, 7, 44)] == runs[(8, 0, 40)] == [
        ("aurora", 1, 2), ("aurora", 5, 5), ("source", 1, 3), ("source", 7, 8), ("source", 10, 10)]
