"""The library's core against the lab's real servers: connections and their errors,
identity and flavour, replica status, the stand-in's Aurora privileges, lab life cycle."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from runbook_lib.core import errors
from runbook_lib.mysql.connection import Endpoint, connect
from runbook_lib.mysql.identity import Flavor
from runbook_lib.mysql.status import ReplicaStatus

pytestmark = pytest.mark.lab


def _source(lab, **kw) -> Endpoint:
    return Endpoint("source", "127.0.0.1", kw.pop("port", lab.state.onprem_port), kw.pop("user", "dba"), **kw)


def _aurora(lab, **kw) -> Endpoint:
    return Endpoint("aurora", "127.0.0.1", kw.pop("port", lab.state.aurora_port), kw.pop("user", "admin"), **kw)


def test_source_identity_and_unprepared_settings(lab):
    with connect(_source(lab), lab.password("onprem_dba")) as src:
        ident = src.identity
        assert ident.flavor is Flavor.MYSQL84_PLUS and ident.version[:2] == (9, 7)
        assert not ident.is_aurora
        v = src.variables("gtid_mode", "enforce_gtid_consistency", "auto_increment_increment")
        assert v == {"gtid_mode": "OFF", "enforce_gtid_consistency": "OFF", "auto_increment_increment": "1"}
        assert src.scalar("SELECT COUNT(*) FROM app_crm.persona") == lab.state.persona_rows


def test_aurora_standin_identity_over_tls(lab):
    with connect(_aurora(lab, tls="required"), lab.password("aurora_admin")) as aur:
        ident = aur.identity
        assert ident.flavor is Flavor.AURORA3 and ident.aurora_generation == 3
        assert ident.server_uuid != ""
        assert aur.scalar("SELECT @@log_bin") == 0          # Aurora's default group: no binary log
        assert aur.query_one("SHOW STATUS LIKE 'Ssl_cipher'")["Value"]


def test_wrong_password_names_the_server_and_changes_nothing(lab):
    with pytest.raises(errors.AuthenticationFailed) as exc:
        connect(_source(lab), "not-the-password")
    text = str(exc.value)
    assert "[source]" in text and "dba" in text and "not-the-password" not in text
    assert "secret" in exc.value.hint


def test_refused_port_and_unknown_host(lab):
    with pytest.raises(errors.ConnectionFailed) as exc:
        connect(_source(lab, port=lab.state.port_base + 50), "x")
    assert "refused" in str(exc.value) and f"{lab.state.port_base + 50}" in str(exc.value)
    with pytest.raises(errors.UnknownHost):
        connect(Endpoint("aurora", "no-such-cluster.invalid", 3306, "admin", connect_timeout=3), "x")


def test_aurora_admin_has_the_master_users_limits(lab):
    """Like Aurora's master user, the lab's admin must use the mysql.rds_* procedures."""
    with connect(_aurora(lab), lab.password("aurora_admin")) as aur:
        with pytest.raises(errors.UnsupportedServer):        # the library will not even build it
            aur.dialect.change_source("127.0.0.1", lab.state.onprem_port, "replicator", "pw")
        with pytest.raises(errors.PrivilegeMissing) as exc:   # and the server refuses it
            aur.execute(f"CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT={lab.state.onprem_port}")
        assert "[aurora]" in str(exc.value)
        with pytest.raises(errors.PrivilegeMissing):
            aur.execute("SET GLOBAL read_only = ON")
        rows = aur.query(aur.dialect.show_configuration())
        assert any(r["name"] == "binlog retention hours" for r in rows)


def test_no_channel_reads_as_none(lab):
    with connect(_source(lab), lab.password("onprem_dba")) as src:
        assert ReplicaStatus.read(src) is None


def test_lab_up_is_idempotent_and_status_shows_both_servers(lab):
    env = {**os.environ, "RUNBOOK_LAB_NAME": lab.state.name}
    started = time.monotonic()
    up = subprocess.run([sys.executable, "-m", "runbook_lib.run.cli", "lab", "up"], env=env,
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    assert time.monotonic() - started < 20          # nothing rebuilt
    assert "creating" not in up.stdout
    status = subprocess.run([sys.executable, "-m", "runbook_lib.run.cli", "lab", "status"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    for word in ("onprem", "aurora", "aws endpoint", "9.7", str(lab.state.onprem_port),
                 str(lab.state.aurora_port), "app_crm.persona"):
        assert word in status.stdout


def test_endpoint_secrets_hold_the_lab_passwords(lab):
    sm = lab.aws("secretsmanager")
    value = sm.get_secret_value(SecretId="runbook-lab/aurora/admin")["SecretString"]
    assert value == lab.password("aurora_admin")
