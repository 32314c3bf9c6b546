"""Cut-over, fallback and the split-brain guard against real servers.

The module builds a lab instance of its own (``<RUNBOOK_TEST_LAB>-cutover``, ports
$RUNBOOK_TEST_PORT_BASE+6 .. +8, or $RUNBOOK_TEST_CUTOVER_PORT_BASE) and sets up two-way GTID
replication directly with labroot, without the notebooks: GTIDs on (online on the source), offsets
2 (source) and 1 (Aurora), Aurora restarted with a binary log, the application schemas and accounts
copied to Aurora unlogged, ``CHANGE REPLICATION SOURCE`` both ways.  The session's shared ``lab`` is not touched.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pytest

from runbook_lib.checks import splitbrain
from runbook_lib.context import session
from runbook_lib.core.errors import CheckFailed, NotApplied
from runbook_lib.mysql.connection import keeps_out_of_binlog
from runbook_lib.phases.cutover import checks as cutover_checks
from runbook_lib.phases.cutover import steps as cutover
from tests.support import own_lab, params_variant, query, replica_running, replicate_both_ways, settle

pytestmark = pytest.mark.lab

APP_ACCOUNTS = {"crm_app": "app_crm", "billing_app": "app_billing", "acme_app": "tenant_acme",
                "globex_app": "tenant_globex"}


def copy_to_aurora(onprem, aurora, app_password: str) -> None:
    """The application schemas, rows and accounts, copied unlogged (Aurora's starting point)."""
    with onprem.connect() as src, aurora.connect() as dst, src.cursor() as s, dst.cursor() as d:
        d.execute("SET SESSION sql_log_bin = 0")
        for schema in APP_ACCOUNTS.values():
            d.execute(f"CREATE DATABASE IF NOT EXISTS {schema}")
            s.execute("SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                      "AND TABLE_TYPE = 'BASE TABLE'", (schema,))
            for table in [r["t"] for r in s.fetchall()]:
                s.execute(f"SHOW CREATE TABLE {schema}.{table}")
                d.execute(f"USE {schema}")
                d.execute(s.fetchone()["Create Table"])
                s.execute(f"SELECT * FROM {schema}.{table}")
                rows = s.fetchall()
                if rows:
                    d.executemany(f"INSERT INTO {schema}.{table} ({', '.join(rows[0])}) VALUES "
                                  f"({', '.join(['%s'] * len(rows[0]))})", [tuple(r.values()) for r in rows])
        for user, schema in APP_ACCOUNTS.items():
            d.execute(f"CREATE USER IF NOT EXISTS '{user}'@'%%' IDENTIFIED BY %s", (app_password,))
            d.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE ON {schema}.* TO '{user}'@'%'")


@contextmanager
def two_way_lab(suffix: str, tmp_path_factory, persona_rows: int = 2000) -> Iterator[tuple[Any, dict, Any]]:
    """(state, servers, params file) of a lab of the tests' own replicating both ways, the scopes' data
    on both sides."""
    from runbook_lib.lab import inspect
    with own_lab(suffix, persona_rows=persona_rows) as (state, servers):
        onprem, aurora = servers["onprem"], servers["aurora"]
        aurora.write_overrides({"log-bin": "binlog", "binlog_format": "ROW", "gtid_mode": "ON",
                                "enforce_gtid_consistency": "ON", "auto_increment_increment": "2",
                                "auto_increment_offset": "1"})
        aurora.stop()                          # log-bin is static: Aurora's binary log needs a restart
        aurora.start()
        copy_to_aurora(onprem, aurora, state.passwords["apps"])
        replicate_both_ways(servers, state.passwords["replicator"], timeout=30)
        yield state, servers, inspect.write_params(state, tmp_path_factory.mktemp(suffix) / "lab.yaml")


@pytest.fixture(scope="module")
def clab(tmp_path_factory):
    """(state, servers, params file) of a lab replicating both ways, the scopes' data on both sides."""
    with two_way_lab("cutover", tmp_path_factory) as lab:
        yield lab


def locked(clab, user: str = "crm_app") -> dict[str, str]:
    """mysql.user.account_locked on each server, read with labroot."""
    return {name: query(inst, "SELECT account_locked AS l FROM mysql.user WHERE User = %s AND Host = '%%'",
                        (user,))[0]["l"] for name, inst in clab[1].items()}


def reset_accounts(clab) -> None:
    for inst in clab[1].values():
        with inst.connect() as conn, conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute("ALTER USER 'crm_app'@'%' ACCOUNT UNLOCK")


def app_session(clab, name: str):
    state, servers, _ = clab
    return servers[name].connect(user="crm_app", password=state.passwords["apps"], database="app_crm")


def switch(clab, direction: str, approve: list[str]):
    with session.open_session(params_variant(clab[2], approvals=[]), approve, quiet=True) as rb:
        move = cutover.prepare(rb, "crm", direction)
        planned = cutover.plan_switch(rb, move, timeout=20)
        outcome = rb.gate.apply(planned.plan, planned.apply)
        return move, planned, outcome


# --- the split-brain guard ---------------------------------------------------------------

def test_split_brain_guard_names_tables_written_from_both_sides_and_not_one_sided_tenants(clab):
    _, servers, params = clab
    with session.open_session(params, [], quiet=True) as rb:
        since = splitbrain.marks(rb.source(), rb.aurora())
        query(servers["onprem"], "INSERT INTO tenant_globex.orders (sku, qty, placed_at) VALUES ('S', 1, NOW())")
        query(servers["aurora"], "INSERT INTO tenant_globex.orders (sku, qty, placed_at) VALUES ('A', 1, NOW())")
        for _ in range(3):
            query(servers["onprem"], "INSERT INTO tenant_acme.orders (sku, qty, placed_at) VALUES ('S', 2, NOW())")
        settle(clab[1])
        recent = splitbrain.guard(rb.source(), rb.aurora(), since=since, scope=["tenant_acme"])
        window = splitbrain.guard(rb.source(), rb.aurora(), window_bytes=2**20)
    rows = {r["table"]: r for r in recent.to_frame().to_dict("records")}
    assert recent.both == ["tenant_globex.orders"]
    assert rows["tenant_globex.orders"]["writes from source"] == 1
    assert rows["tenant_globex.orders"]["writes from aurora"] == 1
    assert rows["tenant_acme.orders (scope)"] == {"table": "tenant_acme.orders (scope)", "writes from source": 3,
                                                  "writes from aurora": 0, "verdict": splitbrain.SOURCE_ONLY}
    assert "tenant_globex.orders" in recent.warning() and recent.warning().startswith("WARNING")
    assert "tenant_acme" not in recent.warning()
    assert "tenant_globex.orders" in window.both and "tenant_acme.orders" not in window.both


# --- checks before the switch ------------------------------------------------------------------

def test_a_write_on_the_side_it_leaves_during_the_window_fails_the_checks(clab):
    _, servers, params = clab
    reset_accounts(clab)
    stop = threading.Event()

    def write() -> None:
        with servers["onprem"].connect() as conn, conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("UPDATE app_crm.persona SET score = score + 1 WHERE id = 2")
                time.sleep(0.2)

    writer = threading.Thread(target=write)
    with session.open_session(params, [], quiet=True) as rb:
        move = cutover.prepare(rb, "crm", "cutover")
        writer.start()
        try:
            checks = cutover_checks.check_before(rb, move, write_window=1.5, catch_up_timeout=20)
        finally:
            stop.set()
            writer.join()
        checks.show()
        failed = {r.item: r for r in checks.results if r.status == "fail"}
        assert "row writes to the scope's tables in 1.5 s" in failed
        assert "app_crm.persona" in failed["row writes to the scope's tables in 1.5 s"].source
        assert "transactions on the scope's tables in the window (binary log)" in failed
        with pytest.raises(CheckFailed, match="row writes"):
            checks.require()
    settle(clab[1])
    assert locked(clab) == {"onprem": "N", "aurora": "N"}


def test_an_application_session_on_the_side_it_leaves_fails_the_checks_and_a_quiet_scope_passes(clab):
    _, _, params = clab
    reset_accounts(clab)
    settle(clab[1])
    with session.open_session(params, [], quiet=True) as rb:
        move = cutover.prepare(rb, "crm", "cutover")
        with app_session(clab, "onprem"):
            busy = cutover_checks.check_before(rb, move, write_window=0.5, catch_up_timeout=20)
        quiet = cutover_checks.check_before(rb, move, write_window=0.5, catch_up_timeout=20)
    failed = {r.item: r for r in busy.results if r.status == "fail"}
    assert "sessions of the scope's accounts" in failed and "crm_app@127.0.0.1" in failed[
        "sessions of the scope's accounts"].advice
    assert quiet.ok, [(r.item, r.source, r.aurora, r.advice) for r in quiet.results if r.status == "fail"]
    assert quiet.comparison is not None and quiet.comparison.ok


# --- the switch ---------------------------------------------------------------------------------

def test_keeping_statements_out_of_the_binary_log(clab):
    with session.open_session(clab[2], [], quiet=True) as rb:
        assert keeps_out_of_binlog(rb.source()) is True
        assert keeps_out_of_binlog(rb.aurora()) is False      # Aurora 3's master user: no SESSION_VARIABLES_ADMIN
        assert rb.source().scalar("SELECT @@SESSION.sql_log_bin") == 1


def test_without_approval_nothing_changes(clab):
    reset_accounts(clab)
    _, planned, outcome = switch(clab, "cutover", [])
    assert outcome.status == "skipped" and not planned.plan.is_empty
    settle(clab[1])
    assert locked(clab) == {"onprem": "N", "aurora": "N"}
    with session.open_session(params_variant(clab[2], approvals=[]), [], quiet=True) as rb:
        with pytest.raises(NotApplied, match="cutover:crm"):
            cutover.verify(rb, cutover_checks.move_for(rb.params, "crm", "cutover"))


def test_cutover_then_fallback_lock_and_unlock_each_side_without_replicating(clab):
    reset_accounts(clab)
    settle(clab[1])
    app = app_session(clab, "onprem")
    _, planned, outcome = switch(clab, "cutover", ["cutover:crm"])
    assert outcome.status == "applied"
    assert [a.kind for a in planned.actions] == ["lock", "kill"]
    settle(clab[1])
    assert locked(clab) == {"onprem": "Y", "aurora": "N"}
    with pytest.raises(pymysql.err.MySQLError):
        app.ping(reconnect=False)                    # its session on the source was ended
    with pytest.raises(pymysql.err.OperationalError) as refused:
        app_session(clab, "onprem")
    assert refused.value.args[0] == 3118             # ER_ACCOUNT_HAS_BEEN_LOCKED
    app_session(clab, "aurora").close()
    with session.open_session(clab[2], [], quiet=True) as rb:
        aurora = f"127.0.0.1:{clab[0].aurora_port}"
        assert cutover.verify(rb, cutover_checks.move_for(rb.params, "crm", "cutover")) == aurora

    _, planned, outcome = switch(clab, "fallback", ["fallback:crm"])
    assert outcome.status == "applied"
    assert [(a.role, a.kind, a.logged) for a in planned.actions] == [
        ("aurora", "lock", True), ("aurora", "kill", False), ("source", "wait", False), ("source", "unlock", False)]
    settle(clab[1])
    assert locked(clab) == {"onprem": "N", "aurora": "Y"}

    _, planned, outcome = switch(clab, "fallback", ["fallback:crm"])
    assert planned.plan.is_empty and outcome.status == "nothing to do"

    _, planned, outcome = switch(clab, "cutover", ["cutover:crm"])   # Aurora's unlock replicates: it goes first
    assert [(a.role, a.kind, a.logged) for a in planned.actions] == [
        ("aurora", "unlock", True), ("source", "wait", False), ("source", "lock", False), ("source", "kill", False)]
    settle(clab[1])
    assert locked(clab) == {"onprem": "Y", "aurora": "N"}
    assert locked(clab, "acme_app") == {"onprem": "N", "aurora": "N"}     # other scopes untouched


def test_an_account_missing_on_aurora_is_copied_there_with_its_password_and_grants(clab):
    _, servers, _ = clab
    reset_accounts(clab)
    with servers["aurora"].connect() as conn, conn.cursor() as cur:   # as a restore from S3 leaves it
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute("DROP USER 'crm_app'@'%'")
    with session.open_session(params_variant(clab[2], approvals=[]), [], quiet=True) as rb:
        move = cutover.prepare(rb, "crm", "cutover")
        checks = cutover_checks.check_before(rb, move, write_window=0.5, catch_up_timeout=20)
        row = next(r for r in checks.results if r.item == "account crm_app@%")
        assert (row.source, row.aurora, row.status) == ("open", "missing", "warn")
        planned = cutover.plan_switch(rb, move, timeout=20)
    shown = planned.plan.to_frame().to_string()
    assert "create crm_app@% as on source" in shown and "(its password hash on source)" in shown
    assert "GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE ON `app_crm`.*" in shown
    _, planned, outcome = switch(clab, "cutover", ["cutover:crm"])
    assert outcome.status == "applied"
    settle(clab[1])
    assert locked(clab) == {"onprem": "Y", "aurora": "N"}
    # the replicated copy was a no-op
    assert replica_running(servers["onprem"]) and replica_running(servers["aurora"])
    with app_session(clab, "aurora") as app, app.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM app_crm.segment")
        assert cur.fetchone()["n"] >= 3
