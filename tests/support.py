"""What the lab and notebook tests share: their labs' names and ports, SQL on a lab server as labroot,
waiting for a condition, replication set up directly with labroot, parameters-file variants, boto3 on a
lab endpoint, and the notebook runs' outputs.  Import it as ``from tests.support import ...``.

Ports of the suite's labs.  Each lab takes three ports from its base: onprem, aurora (+1) and the AWS
endpoint (+2).  The base is ``$RUNBOOK_TEST_PORT_BASE`` (default 25306) plus the offset below, or
``$RUNBOOK_TEST_<SUFFIX>_PORT_BASE`` where that is set (e.g. RUNBOOK_TEST_CUTOVER_PORT_BASE).  All lie
below Linux's ephemeral port range (32768-60999), where a client socket could take a lab's port first.

    =========  ======  ==============================================================================
    suffix     offset  lab (named ``$RUNBOOK_TEST_LAB``, default ``test``, then ``-<suffix>``)
    =========  ======  ==============================================================================
    (none)          0  the session's ``lab`` (tests/conftest.py): test_lab_core and the notebook tests
    failover        3  test_failover_lab
    cutover         6  test_cutover_lab
    bidir          10  test_consistency_lab, test_heartbeat_lab, test_consistency_scale_lab (one lab: :func:`bidir_lab`)
    cleanup        13  test_cleanup_lab
    faults         16  test_faults_lab
    repl           20  test_replication_lib
    lifecycle      24  test_lab_lifecycle
    endpoint       28  test_lab_endpoint (its lab is built from a hand-written state: fixed passwords)
    stream         32  test_backup_stream_lab (and its sshd on loopback at base + 3)
    restore        36  test_restore_blockers_lab (preflight's restore-from-S3 drills, the GTID position)
    aurora84       44  test_pipeline_aurora84 (phases 01-07 with the stand-in as Aurora 8.4)
    guard          52  test_guard_lab (guarded cut-overs, settings that drift)
    browser        56  one port only: the JupyterLab server of tests/browser/test_jupyterlab.py
    =========  ======  ==============================================================================

Outside this table: test_aurora_standin's throwaway servers on free ports in
$RUNBOOK_TEST_STANDIN_PORTS (default 29200-29299).
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.mysql.gtid import GtidSet

REPO = Path(__file__).resolve().parents[1]
UNIT_DATA = REPO / "tests" / "unit" / "data"     # real server outputs the unit tests parse
DEFAULT_PORT_BASE = 25306
DEFAULT_ROWS = 50000

#: lab suffix -> offset of its port base from $RUNBOOK_TEST_PORT_BASE ("" is the session's lab)
PORT_OFFSETS = {"": 0, "failover": 3, "cutover": 6, "bidir": 10, "cleanup": 13, "faults": 16, "repl": 20,
                "lifecycle": 24, "endpoint": 28, "stream": 32, "restore": 36, "aurora84": 44, "guard": 52,
                "browser": 56}


# --- the suite's labs ------------------------------------------------------------------------------

def lab_name(suffix: str = "") -> str:
    """The name of the lab with ``suffix`` (see the table above): ``<RUNBOOK_TEST_LAB>-<suffix>``."""
    name = os.environ.get("RUNBOOK_TEST_LAB", "test")
    return f"{name}-{suffix}" if suffix else name


def port_base(suffix: str = "") -> int:
    """The onprem port of the lab with ``suffix``: its own variable if set, else the suite's base + offset."""
    own = os.environ.get(f"RUNBOOK_TEST_{suffix.upper()}_PORT_BASE") if suffix else None
    if own:
        return int(own)
    return int(os.environ.get("RUNBOOK_TEST_PORT_BASE", DEFAULT_PORT_BASE)) + PORT_OFFSETS[suffix]


def rows() -> int:
    """Rows of app_crm.persona in the labs that take the suite's size ($RUNBOOK_TEST_ROWS, default 50000)."""
    return int(os.environ.get("RUNBOOK_TEST_ROWS", DEFAULT_ROWS))


def reuse() -> bool:
    """RUNBOOK_TEST_LAB_REUSE=1: start from the lab as it is instead of building it fresh."""
    return os.environ.get("RUNBOOK_TEST_LAB_REUSE") == "1"


def keep() -> bool:
    """RUNBOOK_TEST_LAB_KEEP=1: leave the lab running after the tests (to look at it)."""
    return os.environ.get("RUNBOOK_TEST_LAB_KEEP") == "1"


@contextmanager
def own_lab(suffix: str, persona_rows: int = 2000, aurora: str = "3") -> Iterator[tuple[Any, dict]]:
    """A test module's lab of its own, built fresh: (state, {'onprem': ..., 'aurora': ...}) of
    :func:`runbook_lib.lab.control.instances`; destroyed afterwards unless :func:`keep`.  *aurora*:
    the Aurora the stand-in plays (``runbook lab up --aurora``), Aurora 3 as parameters/lab.yaml says."""
    from runbook_lib.lab import control
    name = lab_name(suffix)
    control.down(name, destroy=True, say=lambda *_: None)
    try:
        state = control.up(name, port_base=port_base(suffix), persona_rows=persona_rows, aurora=aurora,
                           say=lambda *_: None)
        yield state, control.instances(state)
    finally:
        if not keep():
            control.down(name, destroy=True, say=lambda *_: None)


def bidir_lab(request) -> Any:
    """The ``bidir`` lab replicating both ways (:func:`bench.shared_replicated_lab`, built once per
    process for the modules that share it); taken down at the end of the session unless :func:`keep`."""
    import bench
    ctx, built = bench.shared_replicated_lab(lab_name("bidir"), port_base("bidir"), rows(), fresh=not reuse())
    if built and not keep():
        request.config.add_cleanup(lambda: bench.take_down(ctx))
    return ctx


# --- SQL on a lab server -------------------------------------------------------------------------

def query(server, statement: str, args=None, **connect) -> list:
    """Run one statement on a new connection of ``server`` (a lab MysqldInstance: labroot, DictCursor,
    autocommit, unless ``connect`` says otherwise, e.g. user=, password=, cursorclass=); its rows.
    Further result sets (a procedure's) are read and dropped."""
    with server.connect(**connect) as conn, conn.cursor() as cur:
        cur.execute(statement, args)
        found = list(cur.fetchall() or ())
        while cur.nextset():
            pass
        return found


def gtids(server) -> GtidSet:
    """The server's gtid_executed."""
    return GtidSet.parse(query(server, "SELECT @@GLOBAL.gtid_executed AS g")[0]["g"])


def replica_status(server) -> dict:
    """The server's SHOW REPLICA STATUS row; {} without a channel."""
    found = query(server, "SHOW REPLICA STATUS")
    return found[0] if found else {}


def replica_running(server) -> bool:
    """Both replication threads of the server's channel run."""
    s = replica_status(server)
    return (s.get("Replica_IO_Running"), s.get("Replica_SQL_Running")) == ("Yes", "Yes")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0, every: float = 0.2,
             detail: Callable[[], str] = lambda: ""):
    """Call ``check`` every ``every`` seconds until it returns something true, and return that; after
    ``timeout`` seconds an AssertionError names ``what`` (and ``detail()``, e.g. a replica's errors)."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} {detail()}".rstrip())
        time.sleep(every)
    return value


def settle(servers: dict, timeout: int = 20) -> None:
    """Each of the two servers has executed the other's transactions (so a replicated statement has
    landed): WAIT_FOR_EXECUTED_GTID_SET both ways, each within ``timeout`` seconds."""
    onprem, aurora = servers["onprem"], servers["aurora"]
    for a, b in ((onprem, aurora), (aurora, onprem)):
        executed = query(a, "SELECT @@GLOBAL.gtid_executed AS g")[0]["g"]
        assert query(b, "SELECT WAIT_FOR_EXECUTED_GTID_SET(%s, %s) AS w", (executed, timeout))[0]["w"] == 0


# --- replication set up directly with labroot, without the notebooks -------------------------------

def prepare_source(source) -> None:
    """The source as phase 2 leaves it: GTIDs on (MySQL's online procedure, waiting for anonymous
    transactions to end) and auto-increment 2/2, persisted."""
    for statement in ("SET PERSIST enforce_gtid_consistency = WARN",
                      "SET PERSIST enforce_gtid_consistency = ON",
                      "SET PERSIST gtid_mode = OFF_PERMISSIVE", "SET PERSIST gtid_mode = ON_PERMISSIVE"):
        query(source, statement)
    wait_for("no anonymous transaction", lambda: query(
        source, "SHOW GLOBAL STATUS LIKE 'Ongoing_anonymous_transaction_count'")[0]["Value"] == "0")
    for statement in ("SET PERSIST gtid_mode = ON", "SET PERSIST auto_increment_increment = 2",
                      "SET PERSIST auto_increment_offset = 2"):
        query(source, statement)


def aurora_from_clone(state, servers: dict) -> None:
    """Aurora as phase 4 leaves it: a clone of the source (CLONE LOCAL DATA DIRECTORY), started with
    GTIDs, a binary log and auto-increment 2/1, the Aurora stand-in installed again."""
    import pymysql

    from runbook_lib.lab import control
    from runbook_lib.lab.aurora_standin import install_aurora_standin
    src, aur = servers["onprem"], servers["aurora"]
    query(src, "INSTALL PLUGIN clone SONAME 'mysql_clone.so'")
    clone = src.runtime_dir.parent / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    query(src, f"CLONE LOCAL DATA DIRECTORY = '{src.runner.inside(clone)}'")
    aur.stop()
    aur.write_overrides({"log-bin": "binlog", "gtid_mode": "ON", "enforce_gtid_consistency": "ON",
                         "auto_increment_increment": "2", "auto_increment_offset": "1"})
    aur.replace_datadir(clone)
    shutil.rmtree(clone, ignore_errors=True)
    aur.start()
    with aur.connect(cursorclass=pymysql.cursors.Cursor) as conn:
        install_aurora_standin(conn, aurora_version=control.aurora_version(state),
                               admin_password=state.passwords["aurora_admin"])


def start_channel(replica, source_port: int, password: str, connect_retry: int = 1) -> None:
    """``replica`` replicates from 127.0.0.1:``source_port`` as 'replicator' (TLS, GTID auto-position)."""
    query(replica, "CHANGE REPLICATION SOURCE TO SOURCE_HOST = '127.0.0.1', SOURCE_PORT = %s, "
                   "SOURCE_USER = 'replicator', SOURCE_PASSWORD = %s, SOURCE_AUTO_POSITION = 1, "
                   "SOURCE_SSL = 1, SOURCE_CONNECT_RETRY = %s", (source_port, password, connect_retry))
    query(replica, "START REPLICA")


def replicate_both_ways(servers: dict, password: str, timeout: float = 60.0) -> None:
    """Two-way GTID replication set up with labroot, without the notebooks: the source prepared (see
    :func:`prepare_source`; nothing else may write to it meanwhile), then both servers empty their GTID
    history, get the replication account (unlogged) and replicate from each other with CHANGE
    REPLICATION SOURCE (a 1 s connect retry).  Returns once both channels run.  Aurora must already have
    GTIDs and a binary log."""
    prepare_source(servers["onprem"])
    for inst in servers.values():
        with inst.connect() as conn, conn.cursor() as cur:
            cur.execute("RESET BINARY LOGS AND GTIDS")
            cur.execute("SET SESSION sql_log_bin = 0")
            cur.execute("CREATE USER IF NOT EXISTS 'replicator'@'%%' IDENTIFIED BY %s", (password,))
            cur.execute("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'replicator'@'%'")
    onprem, aurora = servers["onprem"], servers["aurora"]
    start_channel(aurora, onprem.port, password)
    start_channel(onprem, aurora.port, password)
    wait_for("both directions running", lambda: replica_running(onprem) and replica_running(aurora), timeout)


# --- parameters files and the lab's AWS endpoint ---------------------------------------------------

def params_variant(params_file, **changes) -> Path:
    """A copy of ``params_file`` beside it with ``changes`` to its values (e.g. approvals=[])."""
    params_file = Path(params_file)
    data = {**yaml.safe_load(params_file.read_text()), **changes}
    path = params_file.with_name(f"variant-{abs(hash(repr(sorted(changes.items()))))}.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def aws_client(endpoint_url: str, service: str) -> Any:
    """A boto3 client of ``service`` on a lab's AWS endpoint (as a notebook's session makes it)."""
    import boto3
    return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint_url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


# --- the notebook tests' runs ------------------------------------------------------------------------

def last_run(pipeline, stem: str) -> Any:
    """The executed copy of notebooks/<stem>.ipynb that papermill wrote last (also when it failed)."""
    import nbformat
    return nbformat.read(max(pipeline.out_dir.glob(f"*-{stem}.ipynb")), as_version=4)


def last_output(pipeline, stem: str) -> str:
    """Every text the last run of ``stem`` showed (see :func:`tests.notebooks.conftest.outputs_text`)."""
    from tests.notebooks.conftest import outputs_text
    return outputs_text(last_run(pipeline, stem))


SOURCE_STATE_SQL = """SELECT @@global.gtid_mode AS gtid_mode, @@global.enforce_gtid_consistency AS enforce,
    @@global.auto_increment_increment AS inc, @@global.auto_increment_offset AS off,
    @@global.log_bin_trust_function_creators AS trust, @@global.binlog_expire_logs_seconds AS expire,
    @@global.server_id AS server_id, @@global.binlog_format AS fmt, @@global.sync_binlog AS sync,
    @@global.log_bin AS log_bin, @@global.gtid_executed AS gtids"""


def source_state(lab) -> dict:
    """Everything phases 1 and 2 could change on the lab's source, read as labroot: its settings, its
    persisted settings, its binary log position (None without a binary log) and its number of accounts."""
    with lab.root("onprem") as conn, conn.cursor() as cur:
        cur.execute(SOURCE_STATE_SQL)
        state = dict(cur.fetchone())
        cur.execute("SELECT variable_name, variable_value FROM performance_schema.persisted_variables")
        state["persisted"] = {r["variable_name"]: r["variable_value"] for r in cur.fetchall()}
        cur.execute("SHOW BINARY LOG STATUS")
        status = cur.fetchone()
        state["binlog"] = (status["File"], status["Position"]) if status else None
        cur.execute("SELECT COUNT(*) AS n FROM mysql.user")
        state["accounts"] = cur.fetchone()["n"]
    return state
