"""runbook_lib.mysql.channel_choice: the replication account and channel TLS per source/Aurora pair.

AWS, "Configuring, starting, and stopping binary log (binlog) replication": ssl_encryption "isn't
currently implemented"; mysql.rds_set_binlog_source_ssl from Aurora 3.06.  MySQL: caching_sha2_password
fails without TLS (2061); mysql_native_password off by default in 8.4, removed in 9.0.
"""
from __future__ import annotations

import pytest

from runbook_lib.core.errors import ParameterError, UnsupportedServer
from runbook_lib.mysql.channel_choice import choose_channel, native_password_active
from runbook_lib.mysql.identity import ServerIdentity, flavor_of, parse_version

SHA2, NATIVE = "caching_sha2_password", "mysql_native_password"


def ident(version: str, aurora: str = "") -> ServerIdentity:
    v = parse_version(version)
    return ServerIdentity(v, version, "", flavor_of(v, aurora), aurora)


@pytest.mark.parametrize("source, aurora, native, plugin, to_aurora, to_source, words", [
    # 5.7 -> Aurora 2: no sha2 on either side, no TLS procedure on Aurora 2
    ("5.7.44", ("5.7.40", "2.12.1"), None, NATIVE, False, True, "no caching_sha2_password"),
    # 8.0 -> Aurora 3 by minor version: the TLS procedure from 3.06
    ("8.0.36", ("8.0.28", "3.04.1"), None, NATIVE, False, True, "needs 3.06"),
    ("8.0.36", ("8.0.32", "3.05.2"), None, NATIVE, False, True, "error 2061"),
    ("8.0.36", ("8.0.34", "3.06.0"), None, SHA2, True, True, "rds_set_binlog_source_ssl"),
    ("8.0.40", ("8.0.39", "3.08.0"), None, SHA2, True, True, "rds_set_binlog_source_ssl"),
    # 8.4 -> Aurora 8.4, and 8.0 -> Aurora 8.4 (the fallback leg runs from 8.4 to 8.0)
    ("8.4.3", ("8.4.7", "8.4.7"), None, SHA2, True, True, "rds_set_binlog_source_ssl"),
    ("8.0.40", ("8.4.7", "8.4.7"), None, SHA2, True, True, "rds_set_binlog_source_ssl"),
    # the lab: MySQL 9.7 as source and as the stand-in's engine
    ("9.7.4", ("9.7.4", "3.08.0"), None, SHA2, True, True, ""),
    ("9.7.4", ("9.7.4", "8.4.7"), None, SHA2, True, True, ""),
    # 8.4 source with mysql_native_password=ON and an Aurora without the TLS procedure
    ("8.4.3", ("8.0.32", "3.05.2"), "ACTIVE", NATIVE, False, True, "error 2061"),
])
def test_choice_per_version_pair(source, aurora, native, plugin, to_aurora, to_source, words):
    src, aur = ident(source), ident(*aurora)
    choice = choose_channel(src, aur, native_password=native_password_active(src, native))
    assert (choice.plugin, choice.to_aurora_tls, choice.to_source_tls) == (plugin, to_aurora, to_source)
    assert words in choice.why
    notes = "\n".join(choice.notes())
    assert plugin in notes and "Why:" in notes
    if plugin == NATIVE:          # it says plainly what going without TLS gives up
        assert "unencrypted" in choice.trade_off and "private network" in choice.trade_off
        assert "Trade-off:" in notes
    else:
        assert choice.trade_off == ""


@pytest.mark.parametrize("source, status, active", [
    ("5.7.44", None, True), ("8.0.40", "ACTIVE", True), ("8.4.3", None, False), ("8.4.3", "DISABLED", False),
    ("8.4.3", "ACTIVE", True), ("9.7.4", "ACTIVE", False),
])
def test_native_password_availability(source, status, active):
    assert native_password_active(ident(source), status) is active


def test_no_account_connects_a_9x_source_and_an_aurora_without_the_tls_procedure():
    with pytest.raises(UnsupportedServer, match="no replication account can connect") as info:
        choose_channel(ident("9.7.4"), ident("8.0.32", "3.05.2"), native_password=False)
    assert "3.06" in info.value.hint


def test_tls_off_needs_native_password():
    with pytest.raises(ParameterError, match="replication_ssl"):
        choose_channel(ident("9.7.4"), ident("9.7.4", "3.08.0"), tls=False, native_password=False)
    choice = choose_channel(ident("8.0.40"), ident("8.0.39", "3.08.0"), tls=False)
    assert (choice.plugin, choice.to_aurora_tls, choice.to_source_tls) == (NATIVE, False, False)
    assert "aurora → source channel is unencrypted too" in choice.trade_off


def test_aurora_84_requires_tls_from_the_source_even_when_tls_is_off():
    # AWS, "Comparing Aurora MySQL version 3 and Aurora MySQL version 8.4": require_secure_transport ON
    choice = choose_channel(ident("8.0.40"), ident("8.4.7", "8.4.7"), tls=False)
    assert (choice.plugin, choice.to_aurora_tls, choice.to_source_tls) == (NATIVE, False, True)
    assert "requires secure transport" in choice.why
