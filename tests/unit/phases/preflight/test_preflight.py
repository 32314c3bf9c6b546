"""runbook_lib.phases.preflight.steps and its rules (runbook_lib.phases.preflight.rules: facts -> check rows), on made-up facts,
without servers."""
from __future__ import annotations

import dataclasses

import pytest

from runbook_lib.context.params import load_parameters
from runbook_lib.core.errors import CheckFailed, RunbookError
from runbook_lib.mysql.identity import Flavor, ServerIdentity
from runbook_lib.phases.preflight.rules import SECTIONS
from runbook_lib.phases.preflight.steps import AwsFacts, Inventory, Preflight, ServerFacts
from runbook_lib.phases.source_binlog.steps import retention_seconds
from tests.support import REPO

LAB = load_parameters(REPO / "parameters" / "lab.yaml")

UNPREPARED = {"server_id": "1", "server_uuid": "aaaaaaaa-0000-0000-0000-000000000001", "log_bin": "ON",
              "binlog_format": "ROW", "sync_binlog": "1", "gtid_mode": "OFF",
              "enforce_gtid_consistency": "OFF", "log_bin_trust_function_creators": "OFF",
              "auto_increment_increment": "1", "auto_increment_offset": "1",
              "binlog_expire_logs_seconds": "14400", "expire_logs_days": None,
              "character_set_server": "utf8mb4", "collation_server": "utf8mb4_0900_ai_ci",
              "time_zone": "SYSTEM", "system_time_zone": "UTC"}
PREPARED = {**UNPREPARED, "gtid_mode": "ON", "enforce_gtid_consistency": "ON",
            "log_bin_trust_function_creators": "ON", "auto_increment_increment": "2",
            "auto_increment_offset": "2", "binlog_expire_logs_seconds": "604800"}
LAB_INVENTORY = Inventory(tables_without_pk=("app_billing.payment_log",),
                          routines=("FUNCTION app_billing.tax_for",),
                          triggers=("app_billing.invoice_before_insert",), definers=("dba@%",),
                          accounts=("crm_app@%", "billing_app@%", "dba@%"),
                          schema_charsets=(("app_crm", "utf8mb4", "utf8mb4_0900_ai_ci"),
                                           ("legacy", "latin1", "latin1_swedish_ci")),
                          tables=6, data_bytes=3 * 2**20, index_bytes=2**20, rows_estimate=21876)
NO_CLUSTER = AwsFacts("us-east-1", "http://127.0.0.1:23308", account="123456789012")


def ident(version: tuple[int, int, int], flavor: Flavor = Flavor.MYSQL84_PLUS, aurora: str = "",
          server_id: int = 1, uuid: str = "u") -> ServerIdentity:
    return ServerIdentity(version, ".".join(map(str, version)), "", flavor, aurora, server_id, uuid)


def source(version=(9, 7, 4), flavor=Flavor.MYSQL84_PLUS, **variables) -> ServerFacts:
    return ServerFacts("source", "dba@127.0.0.1:23306", ident(version, flavor), {**UNPREPARED, **variables})


def aurora(**variables) -> ServerFacts:
    base = {**PREPARED, "server_id": "1977146520", "server_uuid": "bbbbbbbb-0000-0000-0000-000000000002",
            "auto_increment_offset": "1", "log_bin": "ON"}
    return ServerFacts("aurora", "admin@127.0.0.1:23307",
                       ident((9, 7, 4), Flavor.AURORA3, "3.08.0", 1977146520), {**base, **variables})


def preflight(src=None, params=LAB, inventory=LAB_INVENTORY, aws=NO_CLUSTER, aur=None,
              problem="") -> Preflight:
    return Preflight(params, src or source(), inventory, aws, aur, problem)


def row(pf: Preflight, item: str):
    found = [r for r in pf.checks() if r.item == item]
    assert found, f"no row {item!r} in {[r.item for r in pf.checks()]}"
    return found[0]


def status(pf: Preflight, item: str) -> str:
    return row(pf, item).status


def test_the_unprepared_lab_source_shows_its_findings_and_passes_with_warnings():
    pf = preflight()
    items = {r.item for r in pf.checks()}
    assert items >= {"source reachable", "AWS API", "Aurora cluster"} and len(items) == len(pf.checks())
    assert status(pf, "Aurora cluster") == "info"
    assert "restored in phase 4" in row(pf, "Aurora cluster").advice
    assert status(pf, "Aurora version for the source") == "warn"
    assert "lab rehearsal only" in row(pf, "Aurora version for the source").advice
    for item, phase in (("gtid_mode", "phase 2"), ("enforce_gtid_consistency", "phase 2"),
                        ("log_bin_trust_function_creators", "phase 2"), ("auto-increment (now)", "phase 2"),
                        ("binlog retention (now)", "phase 2")):
        assert status(pf, item) == "warn" and phase in row(pf, item).advice, item
    assert row(pf, "tables without a primary key").source == "1: app_billing.payment_log"
    assert status(pf, "functions and procedures") == "warn"
    assert "app_billing.invoice_before_insert" in row(pf, "triggers").source
    assert "crm_app@%" in row(pf, "accounts").source and status(pf, "accounts") == "warn"
    assert "legacy (latin1/latin1_swedish_ci)" in row(pf, "character sets").source
    assert "4.0 MiB" in row(pf, "data size").source and "21,876 rows" in row(pf, "data size").source
    assert not [r for r in pf.checks() if r.status == "fail"]
    assert [r.item for r in pf.checks() if r.status != "pass" and not r.advice] == []  # all advise


def test_sections_cover_every_row_once():
    pf = preflight()
    assert sum(len(pf.checks(s)) for s in SECTIONS) == len(pf.checks())
    with pytest.raises(RunbookError, match="no preflight section"):
        pf.checks("nope")


@pytest.mark.parametrize("version, engine, expected", [
    ((5, 7, 44), "5.7.mysql_aurora.2.12.1", "pass"),
    ((5, 7, 44), "5.7.mysql_aurora.2.07.9", "warn"),
    ((5, 7, 44), "8.0.mysql_aurora.3.08.0", "fail"),
    ((8, 0, 36), "8.0.mysql_aurora.3.08.0", "pass"),
    ((8, 0, 36), "5.7.mysql_aurora.2.12.1", "fail"),
    ((8, 0, 36), "aurora-8", "fail"),
    ((9, 7, 4), "8.0.mysql_aurora.3.08.0", "warn"),     # lab rehearsal
    ((8, 4, 3), "8.4.mysql_aurora.8.4.7", "pass"),      # Aurora MySQL 8.4 (2026)
    ((8, 4, 3), "8.0.mysql_aurora.3.08.0", "fail"),
    ((8, 0, 36), "8.4.mysql_aurora.8.4.7", "warn"),     # the fallback leg runs from 8.4 to 8.0
])
def test_which_aurora_matches_the_source(version, engine, expected):
    flavor = {5: Flavor.MYSQL57, 8: Flavor.MYSQL80, 9: Flavor.MYSQL84_PLUS}[version[0]]
    pf = preflight(source(version, flavor), dataclasses.replace(LAB, aurora_engine_version=engine))
    assert status(pf, "Aurora version for the source") == expected


def test_source_80_with_aurora_84_says_what_the_fallback_leg_means():
    pf = preflight(source((8, 0, 36), Flavor.MYSQL80), dataclasses.replace(LAB, aurora_engine_version=
                                                                          "8.4.mysql_aurora.8.4.7"))
    row = next(r for r in pf.checks("versions") if r.item == "Aurora version for the source")
    assert "newer to an older server" in row.advice and "Replication Compatibility Between MySQL" in row.advice
    assert "(Aurora MySQL 8.4, MySQL 8.4)" in row.aurora


@pytest.mark.parametrize("engine, expected", [
    ("5.7.mysql_aurora.2.12.1", "warn"), ("8.0.mysql_aurora.3.05.2", "warn"),
    ("8.0.mysql_aurora.3.06.0", "pass"), ("8.4.mysql_aurora.8.4.7", "pass"),
])
def test_tls_on_auroras_channel_from_3_06(engine, expected):
    pf = preflight(params=dataclasses.replace(LAB, aurora_engine_version=engine))
    row = next(r for r in pf.checks("versions") if r.item == "TLS on Aurora's replication channel")
    assert row.status == expected
    assert ("mysql_native_password" in row.advice) is (expected == "warn")


def test_a_source_without_aurora_counterpart_fails_against_real_aws():
    pf = preflight(params=dataclasses.replace(LAB, aws_endpoint_url=""))
    assert status(pf, "Aurora version for the source") == "fail"
    assert "lab rehearsal only" not in row(pf, "Aurora version for the source").advice


def test_colliding_offsets_in_the_parameters_fail():
    # params.py refuses these when loading; the rule must hold on its own as well
    for changes in ({"aurora_auto_increment_offset": 2}, {"auto_increment_increment": 1,
                                                           "source_auto_increment_offset": 1}):
        pf = preflight(params=dataclasses.replace(LAB, **changes))
        assert status(pf, "auto-increment (parameters)") == "fail"
        assert "collide" in row(pf, "auto-increment (parameters)").advice
    assert status(preflight(), "auto-increment (parameters)") == "pass"


def test_retention_against_expected_restore_time():
    assert status(preflight(source(binlog_expire_logs_seconds="0")), "binlog retention (now)") == "pass"
    assert status(preflight(source(binlog_expire_logs_seconds="86400")), "binlog retention (now)") == "pass"
    five_seven = source((5, 7, 44), Flavor.MYSQL57, binlog_expire_logs_seconds=None, expire_logs_days="1")
    assert status(preflight(five_seven), "binlog retention (now)") == "pass"          # 24 h >= 2 x 6 h
    assert "expire_logs_days=1" in row(preflight(five_seven), "binlog retention (now)").source
    short = dataclasses.replace(LAB, source_binlog_expire_seconds=3600)
    assert status(preflight(params=short), "binlog retention (parameters)") == "fail"
    thin = dataclasses.replace(LAB, source_binlog_expire_seconds=8 * 3600)
    assert status(preflight(params=thin), "binlog retention (parameters)") == "warn"
    assert retention_seconds({"binlog_expire_logs_seconds": "0", "expire_logs_days": "3"}) == 3 * 86400


def test_an_existing_cluster_fills_the_aurora_column():
    cluster = dataclasses.replace(NO_CLUSTER, cluster={"status": "available", "writer": "w-1",
                                                       "engine_version": "8.0.mysql_aurora.3.08.0",
                                                       "endpoint": "127.0.0.1:23307"})
    pf = preflight(aws=cluster, aur=aurora())
    assert status(pf, "Aurora cluster") == "pass" and status(pf, "Aurora writer reachable") == "pass"
    assert status(pf, "same major version (running cluster)") == "pass"
    assert status(pf, "server_uuid") == "pass" and status(pf, "server_id") == "pass"
    assert row(pf, "gtid_mode").aurora == "ON"
    twin = preflight(aws=cluster, aur=aurora(server_uuid=UNPREPARED["server_uuid"], server_id="1"))
    assert status(twin, "server_uuid") == "fail" and status(twin, "server_id") == "fail"
    unprepared = preflight(aws=cluster, aur=aurora(gtid_mode="OFF_PERMISSIVE", binlog_format="OFF"))
    assert "phase 3" in row(unprepared, "gtid_mode").advice
    assert "phase 3" in row(unprepared, "binlog_format").advice
    down = preflight(aws=cluster, problem="[aurora] access denied for user 'admin'")
    assert status(down, "Aurora writer reachable") == "fail"
    assert "access denied" in row(down, "Aurora writer reachable").advice


def test_schema_findings_that_break_the_plan():
    pf = preflight(inventory=dataclasses.replace(LAB_INVENTORY, non_innodb_tables=("app.log (MyISAM)",)))
    assert status(pf, "non-InnoDB tables") == "fail"
    assert "ENGINE=InnoDB" in row(pf, "non-InnoDB tables").advice
    clean = preflight(inventory=Inventory())
    assert status(clean, "tables without a primary key") == "pass"
    assert row(clean, "log_bin_trust_function_creators").status == "pass"   # nothing to trust
    named = preflight(source(time_zone="Europe/Berlin"))
    assert status(named, "time zones") == "warn" and "phase 3" in row(named, "time zones").advice


def test_conclude_raises_check_failed_carrying_the_table(capsys):
    pf = preflight(aws=AwsFacts("us-east-1", "http://127.0.0.1:1", problem="STS GetCallerIdentity: "
                                "Could not connect to the endpoint URL"))
    assert status(pf, "AWS API") == "fail"
    with pytest.raises(CheckFailed) as caught:
        pf.conclude()
    assert caught.value.failed == ["AWS API"]
    assert list(caught.value.table.columns) == ["item", "source", "aurora", "ok", "advice"]
    assert "FAIL: preflight: 1 of" in capsys.readouterr().out


def test_conclude_passes_on_a_prepared_source(capsys):
    preflight(source(**PREPARED), inventory=Inventory()).conclude()
    out = capsys.readouterr().out
    assert "PASS: preflight: all" in out
