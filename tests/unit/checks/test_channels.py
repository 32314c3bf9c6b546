"""runbook_lib.checks.channels, pure parts: channel specs and what a channel needs, the checks and advice for
each direction."""
from __future__ import annotations

import dataclasses

import pytest

from runbook_lib.checks import channels as r
from runbook_lib.context.params import load_parameters
from runbook_lib.mysql.channel_choice import ChannelChoice
from tests.support import REPO

LAB = REPO / "parameters" / "lab.yaml"


@pytest.fixture(scope="module")
def params():
    return load_parameters(LAB)


AUTH_FAILED = dict(io_running="Connecting", last_io_errno=1045, last_io_error="Error connecting to source "
                   "'replicator@127.0.0.1:23307'. Message: Access denied")
NO_TLS_FOR_SHA2 = dict(io_running="Connecting", last_io_errno=2061, ssl_allowed=False, last_io_error=(
    "Error connecting to source 'replicator@127.0.0.1:23306'. This was attempt 1/86400, with a delay of 60 "
    "seconds between attempts. Message: Authentication plugin 'caching_sha2_password' reported error: "
    "Authentication requires secure connection."))


# --- specs -----------------------------------------------------------------------------------

def test_specs_follow_the_parameters(params):
    specs = r.channel_specs(params)
    to_aurora, to_source = specs[r.TO_AURORA], specs[r.TO_SOURCE]
    assert (to_aurora.host, to_aurora.port, to_aurora.user, to_aurora.ssl) == \
        ("127.0.0.1", 23306, "replicator", None)    # without a channel choice, TLS is not compared
    assert to_aurora.connect_retry is None          # Aurora's procedure chooses it
    assert (to_source.host, to_source.port, to_source.connect_retry, to_source.ssl) == \
        ("127.0.0.1", 23307, 2, True)


def test_specs_follow_the_channel_choice(params, replica_status):
    choice = ChannelChoice("mysql_native_password", False, True, "Aurora 3.05 has no TLS procedure")
    specs = r.channel_specs(params, choice)
    assert (specs[r.TO_AURORA].ssl, specs[r.TO_SOURCE].ssl) == (False, True)
    # a rerun plans nothing once the channel is as chosen, and re-plans when its TLS differs
    assert r.channel_needs(specs[r.TO_AURORA], replica_status(source_port=23306, ssl_allowed=False)).ops == ()
    needs = r.channel_needs(specs[r.TO_AURORA], replica_status(source_port=23306, ssl_allowed=True))
    assert needs.ops == ("stop", "set", "start") and "TLS True (wanted False)" in needs.reason


def test_replication_hosts_override_the_connection_hosts(params):
    p = dataclasses.replace(params, source_replication_host="10.0.0.5", aurora_replication_host="cl.example")
    specs = r.channel_specs(p)
    assert specs[r.TO_AURORA].host == "10.0.0.5" and specs[r.TO_SOURCE].host == "cl.example"


def test_differences(params, replica_status):
    spec = r.channel_specs(params)[r.TO_SOURCE]
    assert spec.differences(replica_status()) == []
    assert spec.differences(replica_status(source_host="127.0.0.1".upper())) == []     # host names: any case
    diff = spec.differences(replica_status(source_port=3306, connect_retry=60, auto_position=False,
                                   ssl_allowed=False))
    assert diff == ["source port 3306 (wanted 23307)", "auto position False (wanted True)",
                    "TLS False (wanted True)", "connect retry 60 (wanted 2)"]
    aurora_spec = r.channel_specs(params)[r.TO_AURORA]
    assert aurora_spec.differences(replica_status(source_port=23306, connect_retry=60)) == []


# --- what a channel needs --------------------------------------------------------------------

@pytest.mark.parametrize("changes, ops, reason", [
    (None, ("set", "start"), "no replication channel yet"),
    ({}, (), ""),
    ({"io_running": "Connecting"}, (), ""),                                   # first connection, or a retry
    ({"source_port": 3306}, ("stop", "set", "start"), "configured differently: source port 3306"),
    ({"source_port": 3306, "io_running": "No", "sql_running": "No"}, ("set", "start"),
     "configured differently"),
    (AUTH_FAILED, ("stop", "set", "start"), "cannot log in (error 1045)"),
    (NO_TLS_FOR_SHA2, ("stop", "set", "start"), "configured differently: TLS False (wanted True)"),
    ({**NO_TLS_FOR_SHA2, "ssl_allowed": True}, ("stop", "set", "start"), "caching_sha2_password needs TLS"),
    ({"io_running": "No", "sql_running": "No"}, ("start",), "replication is stopped"),
    ({"io_running": "No"}, ("stop", "start"), "replication is stopped"),      # Aurora: stop a half-run first
    ({"sql_running": "No", "last_sql_errno": 1062, "last_sql_error": "Duplicate entry"}, (),
     "stopped on SQL error 1062"),
])
def test_channel_needs(params, changes, ops, reason, replica_status):
    spec = r.channel_specs(params)[r.TO_SOURCE]
    needs = r.channel_needs(spec, None if changes is None else replica_status(**changes))
    assert needs.ops == ops
    assert reason in needs.reason if reason else needs.reason == ""


# --- checks and advice ------------------------------------------------------------------------

def test_checks_of_two_running_directions(params, replica_status):
    results = r.direction_checks({r.TO_AURORA: replica_status(source_port=23306),
                                  r.TO_SOURCE: replica_status()}, r.channel_specs(params))
    assert all(c.status in ("pass", "info") for c in results)
    io_to_aurora = next(c for c in results if c.item == "source → aurora: IO thread")
    assert (io_to_aurora.aurora, io_to_aurora.source) == ("Yes", "")       # shown where the channel lives
    io_to_source = next(c for c in results if c.item == "aurora → source: IO thread")
    assert (io_to_source.source, io_to_source.aurora) == ("Yes", "")


def test_checks_name_the_missing_channel_and_the_login_failure(params, replica_status):
    results = r.direction_checks({r.TO_AURORA: None, r.TO_SOURCE: replica_status(**AUTH_FAILED)},
                                 r.channel_specs(params))
    failed = {c.item: c for c in results if c.status == "fail"}
    assert set(failed) == {"source → aurora: channel", "aurora → source: IO thread",
                           "aurora → source: last errors"}
    assert "step 'replication'" in failed["source → aurora: channel"].advice
    tip = failed["aurora → source: IO thread"].advice
    assert "replication_password" in tip and "'replicator'" in tip and "1045" in tip


def test_advice_blames_missing_tls_not_the_password_for_2061(replica_status):
    tip = r.advice(r.TO_AURORA, replica_status(**NO_TLS_FOR_SHA2))
    assert "caching_sha2_password" in tip and "without TLS" in tip and "Source_SSL_Allowed is No" in tip
    assert "password does not match" not in tip and "replication_password" not in tip


@pytest.mark.parametrize("changes, words", [
    ({}, ""),
    ({"io_running": "Connecting", "last_io_errno": 2003}, "cannot reach 127.0.0.1:23307"),
    ({"io_running": "No", "last_io_errno": 1236}, "purged"),
    ({"sql_running": "No", "last_sql_errno": 1062}, "troubleshooting notebook"),
    ({"io_running": "Connecting"}, "connecting"),
    ({"io_running": "No", "sql_running": "No"}, "stopped"),
])
def test_advice(changes, words, replica_status):
    text = r.advice(r.TO_SOURCE, replica_status(**changes))
    assert words in text if words else text == ""
