"""runbook_lib.replication, pure parts: channel specs and what a channel needs, SHOW GRANTS parsing,
the checks and advice for each direction, the run-summary figures."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from runbook_lib import replication as r
from runbook_lib.gtid import GtidSet
from runbook_lib.params import load_parameters
from runbook_lib.status import ReplicaStatus

LAB = Path(__file__).resolve().parents[2] / "parameters" / "lab.yaml"
SRC_UUID = "4a2160d0-e772-11f1-a03c-02fc00000001"


@pytest.fixture(scope="module")
def params():
    return load_parameters(LAB)


def status(**changes) -> ReplicaStatus:
    """A running channel of the lab's aurora → source direction, with *changes*."""
    base = ReplicaStatus(
        channel="", source_host="127.0.0.1", source_port=23307, source_user="replicator",
        source_uuid=SRC_UUID,
        source_server_id=1977146520, io_running="Yes", sql_running="Yes",
        io_state="Waiting for source to send event", sql_state="Replica has read all relay log",
        last_io_errno=0, last_io_error="", last_io_error_timestamp="", last_sql_errno=0, last_sql_error="",
        last_sql_error_timestamp="", seconds_behind=0, retrieved_gtid_set=GtidSet(f"{SRC_UUID}:1-3"),
        executed_gtid_set=GtidSet(f"{SRC_UUID}:1-3"), auto_position=True, connect_retry=2, ssl_allowed=True)
    return dataclasses.replace(base, **changes)


AUTH_FAILED = dict(io_running="Connecting", last_io_errno=1045, last_io_error="Error connecting to source "
                   "'replicator@127.0.0.1:23307'. Message: Access denied")


# --- specs -----------------------------------------------------------------------------------

def test_specs_follow_the_parameters(params):
    specs = r.channel_specs(params)
    to_aurora, to_source = specs[r.TO_AURORA], specs[r.TO_SOURCE]
    assert (to_aurora.host, to_aurora.port, to_aurora.user, to_aurora.ssl) == \
        ("127.0.0.1", 23306, "replicator", True)
    assert to_aurora.connect_retry is None          # Aurora's procedure chooses it
    assert (to_source.host, to_source.port, to_source.connect_retry) == ("127.0.0.1", 23307, 2)


def test_replication_hosts_override_the_connection_hosts(params):
    p = dataclasses.replace(params, source_replication_host="10.0.0.5", aurora_replication_host="cl.example")
    specs = r.channel_specs(p)
    assert specs[r.TO_AURORA].host == "10.0.0.5" and specs[r.TO_SOURCE].host == "cl.example"


def test_differences(params):
    spec = r.channel_specs(params)[r.TO_SOURCE]
    assert spec.differences(status()) == []
    assert spec.differences(status(source_host="127.0.0.1".upper())) == []     # host names: any case
    diff = spec.differences(status(source_port=3306, connect_retry=60, auto_position=False,
                                   ssl_allowed=False))
    assert diff == ["source port 3306 (wanted 23307)", "auto position False (wanted True)",
                    "TLS False (wanted True)", "connect retry 60 (wanted 2)"]
    aurora_spec = r.channel_specs(params)[r.TO_AURORA]
    assert aurora_spec.differences(status(source_port=23306, connect_retry=60)) == []


# --- what a channel needs --------------------------------------------------------------------

@pytest.mark.parametrize("changes, ops, reason", [
    (None, ("set", "start"), "no replication channel yet"),
    ({}, (), ""),
    ({"io_running": "Connecting"}, (), ""),                                   # first connection, or a retry
    ({"source_port": 3306}, ("stop", "set", "start"), "configured differently: source port 3306"),
    ({"source_port": 3306, "io_running": "No", "sql_running": "No"}, ("set", "start"),
     "configured differently"),
    (AUTH_FAILED, ("stop", "set", "start"), "cannot log in (error 1045)"),
    ({"io_running": "No", "sql_running": "No"}, ("start",), "replication is stopped"),
    ({"io_running": "No"}, ("stop", "start"), "replication is stopped"),      # Aurora: stop a half-run first
    ({"sql_running": "No", "last_sql_errno": 1062, "last_sql_error": "Duplicate entry"}, (),
     "stopped on SQL error 1062"),
])
def test_channel_needs(params, changes, ops, reason):
    spec = r.channel_specs(params)[r.TO_SOURCE]
    needs = r.channel_needs(spec, None if changes is None else status(**changes))
    assert needs.ops == ops
    assert reason in needs.reason if reason else needs.reason == ""


# --- accounts --------------------------------------------------------------------------------

def test_parse_grants_mysql97_lines():
    lines = ["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `replicator`@`%`",
             "GRANT BACKUP_ADMIN ON *.* TO `replicator`@`%`",
             "GRANT SELECT ON `app_crm`.* TO `replicator`@`%`"]
    privileges, others = r.parse_grants(lines)
    assert privileges == {"REPLICATION SLAVE", "REPLICATION CLIENT", "BACKUP_ADMIN"}
    assert others == ("GRANT SELECT ON `app_crm`.* TO `replicator`@`%`",)


def test_parse_grants_usage_grant_option_and_roles():
    privileges, others = r.parse_grants(["GRANT USAGE ON *.* TO `r`@`%`",
                                         "GRANT SELECT, INSERT ON *.* TO `r`@`%` WITH GRANT OPTION",
                                         "GRANT `app_role`@`%` TO `r`@`%`"])
    assert privileges == {"SELECT", "INSERT", "GRANT OPTION"}
    assert others == ("GRANT `app_role`@`%` TO `r`@`%`",)
    assert r.parse_grants(["GRANT USAGE ON *.* TO `r`@`%`"]) == (frozenset(), ())


# --- checks, advice, figures -----------------------------------------------------------------

def test_checks_of_two_running_directions(params):
    results = r.direction_checks({r.TO_AURORA: status(source_port=23306), r.TO_SOURCE: status()},
                                 r.channel_specs(params))
    assert all(c.status in ("pass", "info") for c in results)
    io_to_aurora = next(c for c in results if c.item == "source → aurora: IO thread")
    assert (io_to_aurora.aurora, io_to_aurora.source) == ("Yes", "")       # shown where the channel lives
    io_to_source = next(c for c in results if c.item == "aurora → source: IO thread")
    assert (io_to_source.source, io_to_source.aurora) == ("Yes", "")


def test_checks_name_the_missing_channel_and_the_login_failure(params):
    results = r.direction_checks({r.TO_AURORA: None, r.TO_SOURCE: status(**AUTH_FAILED)},
                                 r.channel_specs(params))
    failed = {c.item: c for c in results if c.status == "fail"}
    assert set(failed) == {"source → aurora: channel", "aurora → source: IO thread",
                           "aurora → source: last errors"}
    assert "step 'replication'" in failed["source → aurora: channel"].advice
    tip = failed["aurora → source: IO thread"].advice
    assert "replication_password" in tip and "'replicator'" in tip and "1045" in tip


@pytest.mark.parametrize("changes, words", [
    ({}, ""),
    ({"io_running": "Connecting", "last_io_errno": 2003}, "cannot reach 127.0.0.1:23307"),
    ({"io_running": "No", "last_io_errno": 1236}, "purged"),
    ({"sql_running": "No", "last_sql_errno": 1062}, "troubleshooting notebook"),
    ({"io_running": "Connecting"}, "connecting"),
    ({"io_running": "No", "sql_running": "No"}, "stopped"),
])
def test_advice(changes, words):
    text = r.advice(r.TO_SOURCE, status(**changes))
    assert words in text if words else text == ""


def test_figures():
    figures = r.figures({r.TO_AURORA: None, r.TO_SOURCE: status(**AUTH_FAILED)})
    assert figures[r.TO_AURORA] == {"state": "missing"}
    assert figures[r.TO_SOURCE] == {"state": "connecting", "seconds_behind": 0, "io_errno": 1045,
                                    "sql_errno": 0}
    assert figures["canary"] == {}
