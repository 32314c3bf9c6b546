"""The Aurora stand-in against two real MySQL 9.7 servers: a source and an "aurora".

The module starts its own throwaway servers from the lab's cached Debian sid root
filesystem (no dependency on the lab fixture), installs the stand-in on one of them,
and drives replication from the other through Aurora's procedure names as the
runbook's admin account does.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import closing
from pathlib import Path

import pymysql
import pytest

from runbook_lib.core.errors import LabError, PrivilegeMissing, QueryFailed
from runbook_lib.lab.aurora_standin import (
    AURORA3_ONLY_PROCEDURES,
    FORBIDDEN_PRIVILEGES,
    install_aurora_standin,
    master_user_grants,
    procedures_for,
    split_sql_script,
    standin_installed,
)
from runbook_lib.mysql.connection import Endpoint, connect, keeps_out_of_binlog
from tests.support import wait_for

pytestmark = pytest.mark.lab

CACHE = Path(os.environ.get("RUNBOOK_LAB_CACHE") or Path.home() / ".cache" / "runbook-lab")
ROOTFS = CACHE / "rootfs-sid-mysql"
_LO, _HI = os.environ.get("RUNBOOK_TEST_STANDIN_PORTS", "29200-29299").split("-")
PORTS = range(int(_LO), int(_HI) + 1)
ADMIN_PASSWORD = "Adm1n-standin-pw"
REPL_USER, REPL_PASSWORD = "repl_aurora", "Repl-standin-pw"


# --- throwaway servers ---------------------------------------------------------------------------

def _free_ports(count: int) -> list[int]:
    found = []
    for port in PORTS:
        with closing(socket.socket()) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            found.append(port)
        if len(found) == count:
            return found
    pytest.skip(f"no {count} free ports in {PORTS.start}-{PORTS.stop - 1}")


class Server:
    def __init__(self, root: Path, name: str, port: int, server_id: int) -> None:
        self.name, self.port = name, port
        self.dir = root / name
        self.dir.mkdir()
        inside = "/" + str(self.dir.relative_to(ROOTFS))
        self.cnf = f"{inside}/my.cnf"
        (self.dir / "my.cnf").write_text("\n".join([
            "[mysqld]", f"datadir={inside}/data", f"socket={inside}/mysqld.sock",
            f"pid-file={inside}/mysqld.pid", f"log-error={inside}/error.log", f"port={port}",
            f"server-id={server_id}", "bind-address=127.0.0.1", "mysqlx=OFF", "secure-file-priv=",
            "gtid_mode=ON", "enforce_gtid_consistency=ON", "",
        ]))
        self.proc: subprocess.Popen | None = None

    def initialize(self) -> subprocess.Popen:
        return subprocess.Popen(["chroot", str(ROOTFS), "mysqld", f"--defaults-file={self.cnf}",
                                 "--initialize-insecure", "--user=root"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def start(self) -> None:
        self.proc = subprocess.Popen(["chroot", str(ROOTFS), "mysqld", f"--defaults-file={self.cnf}",
                                      "--user=root"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.root().close()
                return
            except pymysql.err.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    log = (self.dir / "error.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{self.name} did not start:\n{log}") from None
                time.sleep(0.2)

    def root(self) -> pymysql.connections.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="",
                               autocommit=True, connect_timeout=5)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_stopped(self) -> None:
        if not self.proc:
            return
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def servers():
    if not (ROOTFS / "usr" / "sbin" / "mysqld").exists():
        pytest.skip(f"no MySQL root filesystem at {ROOTFS} (build it with `runbook lab up`)")
    if os.geteuid() != 0:
        pytest.skip("starting mysqld with chroot needs root")
    (ROOTFS / "tmp").mkdir(exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="pytest-aurora-standin-", dir=ROOTFS / "tmp"))
    ports = _free_ports(2)
    source, aurora = Server(workdir, "source", ports[0], 1), Server(workdir, "aurora", ports[1], 2)
    try:
        inits = [source.initialize(), aurora.initialize()]
        assert [p.wait(timeout=120) for p in inits] == [0, 0], "mysqld --initialize-insecure failed"
        for server in (source, aurora):
            server.start()
        for server in (source, aurora):
            server.wait_ready()
        yield source, aurora
    finally:
        for server in (source, aurora):
            server.stop()
        for server in (source, aurora):
            server.wait_stopped()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def pair(servers):
    """Source with a replication user; aurora with the stand-in installed."""
    source, aurora = servers
    with closing(source.root()) as c, c.cursor() as cur:
        cur.execute(f"CREATE USER '{REPL_USER}'@'%' IDENTIFIED WITH caching_sha2_password"
                    f" BY '{REPL_PASSWORD}'")
        cur.execute(f"GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{REPL_USER}'@'%'")
        cur.execute("CREATE DATABASE app")
    with closing(aurora.root()) as c:
        install_aurora_standin(c, aurora_version="3.08.0", admin_password=ADMIN_PASSWORD)
    return source, aurora


@pytest.fixture
def admin(pair):
    """The runbook's admin account on the stand-in; replication is forgotten after the test."""
    _, aurora = pair
    conn = pymysql.connect(host="127.0.0.1", port=aurora.port, user="admin", password=ADMIN_PASSWORD,
                           autocommit=True)
    yield conn
    conn.close()
    with closing(aurora.root()) as c, c.cursor() as cur:
        cur.execute("STOP REPLICA")
        cur.execute("RESET REPLICA ALL")


# --- helpers -------------------------------------------------------------------------------------

def call(conn, sql: str, args=None) -> list[tuple]:
    """Run a statement; return the rows of all its result sets."""
    with conn.cursor() as cur:
        cur.execute(sql, args)
        rows = list(cur.fetchall() or ())
        while cur.nextset():
            rows += list(cur.fetchall() or ())
    return rows


def scalar(conn, sql: str):
    return call(conn, sql)[0][0]


def refused(conn, sql: str, args=None) -> tuple[int, str]:
    with pytest.raises(pymysql.MySQLError) as info:
        call(conn, sql, args)
    return info.value.args[0], info.value.args[1]


def set_source(admin, source, proc="rds_set_external_source_with_auto_position"):
    return call(admin, f"CALL mysql.{proc}(%s, %s, %s, %s, %s)",
                ("127.0.0.1", source.port, REPL_USER, REPL_PASSWORD, 1))


def replica_status(admin) -> dict:
    with admin.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute("SHOW REPLICA STATUS")
        return cur.fetchone() or {}


def privileges(grant_lines) -> set[str]:
    """Privilege names in SHOW GRANTS lines of the form GRANT a, b ON *.* TO ..."""
    names = set()
    for (line,) in grant_lines:
        if " ON " in line:
            names |= {p.strip() for p in line[len("GRANT "):line.index(" ON ")].split(",")}
    return names


def gtid_executed(conn) -> str:
    return scalar(conn, "SELECT @@GLOBAL.gtid_executed").replace("\n", "")


# --- tests ---------------------------------------------------------------------------------------

def test_sql_script_splits_on_delimiter_convention():
    parts = split_sql_script("-- c\nSET a=1;\nDELIMITER $$\nCREATE PROCEDURE p() BEGIN SELECT 1; END $$\n"
                             "DELIMITER ;\nSELECT 2;\n")
    assert parts == ["SET a=1", "CREATE PROCEDURE p() BEGIN SELECT 1; END", "SELECT 2"]
    with pytest.raises(LabError):
        split_sql_script("SELECT 1")


def test_installed_and_version_readable_by_admin(pair, admin):
    _, aurora = pair
    with closing(aurora.root()) as c:
        assert standin_installed(c)
    assert call(admin, "SELECT value FROM mysql.rds_sysinfo WHERE name = 'aurora_version'") == [("3.08.0",)]
    definers = call(admin, "SELECT DISTINCT DEFINER, SECURITY_TYPE FROM information_schema.ROUTINES "
                           "WHERE ROUTINE_SCHEMA = 'mysql' AND ROUTINE_NAME LIKE 'rds%'")
    assert definers == [("rdsadmin@localhost", "DEFINER")]


def test_admin_has_aurora_master_user_privileges_only(admin):
    grants = " ".join(r[0] for r in call(admin, "SHOW GRANTS"))
    assert "`rds_superuser_role`@`%`" in grants
    assert call(admin, "SELECT CURRENT_ROLE()") == [("`rds_superuser_role`@`%`",)]
    direct, role = master_user_grants("3.08.0")
    assert privileges(call(admin, "SHOW GRANTS FOR 'admin'@'%'")) == set(direct)
    effective = privileges(call(admin, "SHOW GRANTS"))       # the current user's: with its active role
    assert effective == set(direct) | set(role)
    assert not effective & set(FORBIDDEN_PRIVILEGES)
    # ... and what the runbook needs from it: users, replication grants, status, performance_schema.
    call(admin, "CREATE USER 'repl_onprem'@'%' IDENTIFIED BY 'R3pl-onprem-pw'")
    call(admin, "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'repl_onprem'@'%'")
    call(admin, "DROP USER 'repl_onprem'@'%'")
    assert call(admin, "SHOW REPLICA STATUS") == []
    call(admin, "SELECT * FROM performance_schema.replication_applier_status_by_worker")
    call(admin, "SHOW BINARY LOG STATUS")


def test_admin_cannot_change_replication_or_globals_directly(admin, pair):
    source, _ = pair
    for sql in (f"CHANGE REPLICATION SOURCE TO SOURCE_HOST='127.0.0.1', SOURCE_PORT={source.port}",
                "START REPLICA", "STOP REPLICA",
                "SET GLOBAL binlog_expire_logs_seconds = 3600", "SET SESSION sql_log_bin = 0",
                "DROP PROCEDURE mysql.rds_start_replication", "DROP USER 'rdsadmin'@'localhost'"):
        errno, _ = refused(admin, sql)
        assert errno == 1227, sql                                    # ER_SPECIFIC_ACCESS_DENIED_ERROR


def test_full_cycle_set_start_replicate_stop_reset(admin, pair):
    source, _ = pair
    with closing(source.root()) as src:
        call(src, "CREATE TABLE app.cycle (id INT PRIMARY KEY, v VARCHAR(20))")
        errno, msg = refused(admin, "CALL mysql.rds_start_replication")
        assert (errno, msg) == (1644, "You can't start replication because the replica isn't configured. "
                                      "First call mysql.rds_set_external_master.")
        assert set_source(admin, source) == []
        status = replica_status(admin)
        # ssl_encryption=1 was given: Aurora ignores it ("This option isn't currently implemented").
        assert (status["Source_Port"], status["Auto_Position"], status["Source_SSL_Allowed"],
                status["Connect_Retry"], status["Source_Retry_Count"]) == (source.port, 1, "No", 60, 86400)
        assert call(admin, "CALL mysql.rds_set_binlog_source_ssl(1)") == [("Binlog source SSL has been set to 1.",)]
        status = replica_status(admin)
        assert (status["Source_SSL_Allowed"], status["Source_SSL_Verify_Server_Cert"]) == ("Yes", "No")
        assert set(status["Replicate_Ignore_Table"].split(",")) == {
            "mysql.rds_replication_status", "mysql.rds_monitor", "mysql.rds_sysinfo",
            "mysql.rds_configuration", "mysql.rds_history"}
        assert call(admin, "CALL mysql.rds_start_replication") == [
            ("Replication started. Slave is now running normally.",)]

        errno, msg = refused(admin, "CALL mysql.rds_set_external_source_with_auto_position(%s,%s,%s,%s,%s)",
                             ("127.0.0.1", source.port, REPL_USER, REPL_PASSWORD, 1))
        assert (errno, msg) == (1644, "You can't modify replication because replication is running. "
                                      "First call mysql.rds_stop_replication.")
        errno, _ = refused(admin, "CALL mysql.rds_set_external_master_with_auto_position(%s,%s,%s,%s,%s)",
                           ("127.0.0.1", source.port, REPL_USER, REPL_PASSWORD, 1))
        assert errno == 1644
        assert refused(admin, "CALL mysql.rds_start_replication")[0] == 1644

        call(src, "INSERT INTO app.cycle VALUES (1, 'from source')")
        wait_for("the row on the stand-in", lambda: call(admin, "SELECT v FROM app.cycle WHERE id = 1"), 15)

        assert call(admin, "CALL mysql.rds_stop_replication") == [("Slave is now down or disabled",)]
        assert refused(admin, "CALL mysql.rds_stop_replication")[0] == 1644
        assert call(admin, "CALL mysql.rds_reset_external_source") == [("Slave has been reset",)]
        assert replica_status(admin) == {}
        assert refused(admin, "CALL mysql.rds_reset_external_source")[0] == 1644
        assert refused(admin, "CALL mysql.rds_set_binlog_source_ssl(1)")[0] == 1644      # no channel
        actions = [r[0] for r in call(admin, "SELECT action FROM mysql.rds_history")]
        assert {"set master", "start slave", "stop slave", "reset slave"} <= set(actions)


def test_skip_transaction_with_gtid_skips_exactly_one(admin, pair):
    source, _ = pair
    with closing(source.root()) as src:
        call(src, "CREATE TABLE app.conflict (id INT PRIMARY KEY, v VARCHAR(20))")
        set_source(admin, source)
        call(admin, "CALL mysql.rds_start_replication")
        wait_for("the table on the stand-in", lambda: call(admin, "SHOW TABLES FROM app LIKE 'conflict'"), 15)

        call(admin, "INSERT INTO app.conflict VALUES (2, 'aurora')")           # the stand-in's own row
        call(src, "INSERT INTO app.conflict VALUES (2, 'source')")             # the same key: 1062
        source_uuid = scalar(src, "SELECT @@server_uuid")
        failing = wait_for("the duplicate-key error", lambda: call(
            admin, "SELECT APPLYING_TRANSACTION FROM performance_schema.replication_applier_status_by_worker"
                   " WHERE LAST_ERROR_NUMBER = 1062"), 15)[0][0]
        assert failing.startswith(source_uuid + ":")
        assert replica_status(admin)["Last_SQL_Errno"] == 1062

        errno, _ = refused(admin, "CALL mysql.rds_skip_repl_error")
        assert errno == 1858                      # GTID mode: Aurora refuses the skip counter
        before = gtid_executed(admin)
        assert call(admin, "CALL mysql.rds_skip_transaction_with_gtid(%s)", (failing,)) == [
            ("Transaction has been skipped successfully.",)]
        after = gtid_executed(admin)
        assert scalar(admin, f"SELECT GTID_SUBTRACT('{after}', '{before}')") == failing

        assert refused(admin, "CALL mysql.rds_start_replication")[0] == 1644  # receiver still running
        call(admin, "CALL mysql.rds_stop_replication")
        call(admin, "CALL mysql.rds_start_replication")
        call(src, "INSERT INTO app.conflict VALUES (3, 'after skip')")
        wait_for("replication to continue", lambda: call(admin, "SELECT 1 FROM app.conflict WHERE id = 3"),
                 15)
        assert call(admin, "SELECT id, v FROM app.conflict ORDER BY id") == [(2, "aurora"), (3, "after skip")]
        assert replica_status(admin)["Replica_SQL_Running"] == "Yes"


def test_binlog_retention_limits_and_effect(admin):
    msg = "For binlog retention hours the value must be between 1 and 2160 inclusive or be NULL"
    assert refused(admin, "CALL mysql.rds_set_configuration('binlog retention hours', 2161)") == (1644, msg)
    assert refused(admin, "CALL mysql.rds_set_configuration('binlog retention hours', 0)") == (1644, msg)
    call(admin, "CALL mysql.rds_set_configuration('binlog retention hours', 2160)")
    call(admin, "CALL mysql.rds_set_configuration('binlog retention hours', 48)")
    rows = call(admin, "CALL mysql.rds_show_configuration")
    assert [(r[0], r[1]) for r in rows] == [("binlog retention hours", "48")]
    assert scalar(admin, "SELECT @@GLOBAL.binlog_expire_logs_seconds") == 48 * 3600


def test_internal_writes_do_not_change_gtid_executed(admin, pair):
    _, aurora = pair
    before = gtid_executed(admin)
    with closing(aurora.root()) as c:
        install_aurora_standin(c, aurora_version="3.08.0", admin_password=ADMIN_PASSWORD)
    call(admin, "CALL mysql.rds_set_configuration('binlog retention hours', 24)")
    call(admin, "CALL mysql.rds_show_configuration")
    for sql in ("CALL mysql.rds_start_replication", "CALL mysql.rds_stop_replication",
                "CALL mysql.rds_reset_external_source", "CALL mysql.rds_skip_repl_error"):
        refused(admin, sql)                                   # each still writes mysql.rds_history
    assert call(admin, "SELECT COUNT(*) FROM mysql.rds_history")[0][0] > 0
    assert gtid_executed(admin) == before
    assert scalar(admin, "SELECT @@SESSION.sql_log_bin") == 1


def test_binlog_ssl_material_is_checked_kept_as_digests_and_removed(admin):
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    good = json.dumps({"ssl_ca": pem, "ssl_cert": pem, "ssl_key": pem.replace("CERTIFICATE", "RSA PRIVATE KEY")})
    assert call(admin, "CALL mysql.rds_import_binlog_ssl_material(%s)", (good,)) == [
        ("SSL material has been imported.",)]
    stored = call(admin, "SELECT * FROM mysql.rds_standin_ssl_material")
    assert len(stored) == 1 and "BEGIN" not in repr(stored)                # digests, never the key
    for bad in ("not json", json.dumps({"ssl_ca": pem, "ssl_cert": pem}), json.dumps(
            {"ssl_ca": pem, "ssl_cert": pem, "ssl_key": "plain"})):
        errno, msg = refused(admin, "CALL mysql.rds_import_binlog_ssl_material(%s)", (bad,))
        assert errno == 1644 and "ssl_ca, ssl_cert and ssl_key" in msg
    assert call(admin, "CALL mysql.rds_remove_binlog_ssl_material") == [("SSL material has been removed.",)]
    assert call(admin, "SELECT COUNT(*) FROM mysql.rds_standin_ssl_material") == [(0,)]


def test_procedures_refuse_inside_a_transaction_like_aurora(pair):
    _, aurora = pair
    with closing(pymysql.connect(host="127.0.0.1", port=aurora.port, user="admin",
                                 password=ADMIN_PASSWORD, autocommit=False)) as c:
        call(c, "SELECT COUNT(*) FROM mysql.rds_history FOR SHARE")   # opens a transaction
        call(c, "CALL mysql.rds_show_configuration")                    # read-only: allowed
        assert refused(c, "CALL mysql.rds_set_configuration('binlog retention hours', 24)")[0] == 1694


def test_second_install_updates_password_and_aurora2_names(pair):
    _, aurora = pair

    def login(password):
        return pymysql.connect(host="127.0.0.1", port=aurora.port, user="admin", password=password)

    with closing(aurora.root()) as c:
        install_aurora_standin(c, aurora_version="2.12.1", admin_password="Another-pw-2")
        names = {r[0] for r in call(c, "SELECT ROUTINE_NAME FROM information_schema.ROUTINES "
                                       "WHERE ROUTINE_SCHEMA = 'mysql' AND ROUTINE_TYPE = 'PROCEDURE'")}
        assert "rds_set_external_master_with_auto_position" in names
        assert not names & set(AURORA3_ONLY_PROCEDURES)
        assert "rds_set_binlog_source_ssl" not in names          # Aurora 3.06 and higher only
        assert "rds_import_binlog_ssl_material" not in names     # Aurora 2: only 2.09.2, 2.10.0/1, 2.11.0
        assert standin_installed(c)
        with pytest.raises(pymysql.err.OperationalError):
            login(ADMIN_PASSWORD).close()
        with closing(login("Another-pw-2")) as a:
            grants = " ".join(r[0] for r in call(a, "SHOW GRANTS"))
            assert "WITH GRANT OPTION" in grants and "rds_superuser_role" not in grants
        for version, has_ssl, has_master in (("3.05.2", False, True), ("8.4.7", True, False),
                                             ("2.11.0", False, True)):
            install_aurora_standin(c, aurora_version=version, admin_password=ADMIN_PASSWORD)
            names = {r[0] for r in call(c, "SELECT ROUTINE_NAME FROM information_schema.ROUTINES "
                                           "WHERE ROUTINE_SCHEMA = 'mysql' AND ROUTINE_TYPE = 'PROCEDURE'")}
            assert set(procedures_for(version)) <= names and standin_installed(c)
            assert ("rds_set_binlog_source_ssl" in names, "rds_reset_external_master" in names) == \
                (has_ssl, has_master), version
            assert "rds_import_binlog_ssl_material" in names, version     # 2.11.0, 3.01.1+ and 8.4
        install_aurora_standin(c, aurora_version="3.08.0", admin_password=ADMIN_PASSWORD)
        assert standin_installed(c)
    login(ADMIN_PASSWORD).close()


@pytest.mark.parametrize("version, way", [("2.12.1", "procedure"), ("2.11.5", ""), ("3.08.0", "refused")])
def test_session_binlog_as_each_aurora_version_offers_it(pair, version, way):
    """AWS "Configuring, starting, and stopping binary log (binlog) replication": Aurora 2.12+ has
    mysql.rds_disable_session_binlog / rds_enable_session_binlog; Aurora 3 allows SET SESSION
    sql_log_bin only with SESSION_VARIABLES_ADMIN, which its master user lacks; older Aurora 2: nothing."""
    _, aurora = pair
    with closing(aurora.root()) as c:
        install_aurora_standin(c, aurora_version=version, admin_password=ADMIN_PASSWORD)
    try:
        endpoint = Endpoint("aurora", "127.0.0.1", aurora.port, "admin")
        with connect(endpoint, ADMIN_PASSWORD) as srv:
            assert keeps_out_of_binlog(srv) is (way == "procedure")
            assert srv.scalar("SELECT @@SESSION.sql_log_bin") == 1
            srv.execute("CREATE DATABASE IF NOT EXISTS standin_binlog")
            srv.execute("CREATE TABLE IF NOT EXISTS standin_binlog.t (id INT PRIMARY KEY)")
            srv.execute("DELETE FROM standin_binlog.t")
            position = srv.query_one("SHOW BINARY LOG STATUS")["Position"]
            if way == "procedure":
                srv.execute("CALL mysql.rds_disable_session_binlog")
                srv.execute("INSERT INTO standin_binlog.t VALUES (1)")
                assert srv.query_one("SHOW BINARY LOG STATUS")["Position"] == position   # not logged
                srv.execute("CALL mysql.rds_enable_session_binlog")
                srv.execute("INSERT INTO standin_binlog.t VALUES (2)")
                assert srv.query_one("SHOW BINARY LOG STATUS")["Position"] > position
            else:
                with pytest.raises(QueryFailed) as missing:
                    srv.execute("CALL mysql.rds_disable_session_binlog")
                assert missing.value.errno == 1305                                         # not this version
            if way == "refused":
                with pytest.raises(PrivilegeMissing):                                      # no SESSION_VARIABLES_ADMIN
                    srv.execute("SET SESSION sql_log_bin = 0")
    finally:
        with closing(aurora.root()) as c:
            install_aurora_standin(c, aurora_version="3.08.0", admin_password=ADMIN_PASSWORD)
