"""What the lab's AWS endpoint does to the lab's ``aurora`` server.

:class:`AuroraWiring` turns RDS calls into real server operations: the cluster parameter
group into ``overrides.cnf`` and ``SET GLOBAL``; a restore from S3 into a new data
directory; a reboot into a restart; a failover into a crash, an outage, a read-only start
and then a writable server.  It also publishes ``AuroraBinlogReplicaLag`` to CloudWatch.
The server plays one cluster record at a time (:class:`LabCluster`).  Used by
:mod:`.endpoint`; nothing here parses or answers HTTP.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

import boto3
import pymysql
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.utils import utcnow
from moto.rds.exceptions import DBClusterParameterGroupNotFoundError
from moto.rds.models import DBCluster, rds_backends

from runbook_lib.core.errors import LabError, RunbookError
from runbook_lib.lab import aurora_defaults as ad
from runbook_lib.lab.aurora_standin import install_aurora_standin
from runbook_lib.lab.servers import MysqldInstance

log = logging.getLogger(__name__)
_FAILURES = (RunbookError, pymysql.err.MySQLError, OSError, ClientError, BotoCoreError,
             subprocess.SubprocessError)
_DEFAULT_GROUP = re.compile(r"default\.(aurora-mysql\d\.\d)")
_SYSTEM_USERS = ("mysql.sys", "mysql.session", "mysql.infoschema")


@dataclass(frozen=True)
class Timings:
    failover_down: float = 1.5        # s the writer refuses connections during a failover
    failover_read_only: float = 1.5   # s it then refuses writes (error 1290)
    metric_interval: float = 1.0      # s between AuroraBinlogReplicaLag data points


class LabCluster(DBCluster):
    """A cluster record the ``aurora`` server plays (swapped in as the record's class): its
    status is the lab's (moto turns 'creating' into 'available' at the first read), its
    endpoint is the real server, its members show a pending reboot."""

    lab_pending_reboot = False

    @property
    def status(self) -> str:
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = value

    @property
    def endpoint(self) -> str:
        return "127.0.0.1"

    @property
    def reader_endpoint(self) -> str:
        return "127.0.0.1"

    @property
    def db_cluster_members(self) -> list[dict]:
        members = DBCluster.db_cluster_members.fget(self)
        status = "pending-reboot" if self.lab_pending_reboot else "in-sync"
        for member in members:
            member["DBClusterParameterGroupStatus"] = status
        return members


class _Event:
    """A DescribeEvents entry (moto serializes its own events from these attributes)."""

    def __init__(self, cluster: DBCluster, message: str, category: str) -> None:
        self.source_identifier, self.source_arn = cluster.db_cluster_identifier, cluster.db_cluster_arn
        self.source_type, self.message, self.event_categories = "db-cluster", message, [category]
        self.date = utcnow()


class AuroraWiring:
    """What the endpoint does to the lab's ``aurora`` server: one server operation at a time."""

    def __init__(self, aurora: MysqldInstance, url: str, timings: Timings) -> None:
        self.aurora, self.url, self.timings = aurora, url, timings
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.bound: tuple[object, str] | None = None    # (rds backend, cluster id) the server plays
        self._session, self._clients, self._clients_lock = boto3.session.Session(), {}, threading.Lock()
        self._standin_major: str | None = None
        #: 'kept': a restore keeps the backup's GTID history; 'lost': it comes up with none (AWS does not
        #: promise either: the runbook's phase 4 must find out and set it, see gtid_position.py).
        self.restore_gtids = "kept"

    # -- records -------------------------------------------------------------
    def adopt(self, cluster: DBCluster, status: str) -> LabCluster:
        """Make ``cluster`` a :class:`LabCluster` record with ``status``."""
        cluster.__class__ = LabCluster
        cluster.status, cluster.port = status, self.aurora.port
        return cluster

    def bind(self, backend, cluster: DBCluster) -> None:
        """From now on the server plays ``cluster``."""
        self.bound = (backend, cluster.db_cluster_identifier)
        log.info("aurora server now plays cluster %s", cluster.db_cluster_identifier)

    def bound_cluster(self, backend=None, cluster_id: str | None = None) -> LabCluster | None:
        """The cluster the server plays (if it is ``cluster_id`` of ``backend``, when given)."""
        if self.bound is None or (backend is not None and backend is not self.bound[0]):
            return None
        cluster = self.bound[0].clusters.get(self.bound[1])
        if cluster is None or (cluster_id and cluster_id.lower() != cluster.db_cluster_identifier):
            return None
        return cluster

    def event(self, backend, cluster: DBCluster, message: str, category: str = "notification") -> None:
        backend.events.append(_Event(cluster, message, category))
        log.info("event %s: %s", cluster.db_cluster_identifier, message)

    def client(self, service: str, region: str = "us-east-1", account: str = DEFAULT_ACCOUNT_ID):
        """A boto3 client of this endpoint, in ``region`` and moto account ``account``."""
        with self._clients_lock:
            key = (service, region, account)
            if key not in self._clients:
                c = self._session.client(service, region_name=region, endpoint_url=self.url,
                                         aws_access_key_id="testing", aws_secret_access_key="testing",
                                         config=Config(retries={"max_attempts": 2}))
                if account != DEFAULT_ACCOUNT_ID:
                    c.meta.events.register("before-sign", lambda request, **_: request.headers.__setitem__(
                        "x-moto-account-id", account))
                self._clients[key] = c
            return self._clients[key]

    def standin_major(self) -> str:
        """The stand-in's own MySQL major version ('9.7'), from ``mysqld --version``."""
        if self._standin_major is None:
            out = subprocess.run(self.aurora.runner.command("--version"), capture_output=True, text=True,
                                 check=True).stdout
            self._standin_major = re.search(r"Ver (\d+\.\d+)", out)[1]
        return self._standin_major

    # -- the cluster parameter group on the server ---------------------------
    def write_group(self, backend, cluster: DBCluster) -> str:
        """Write the cluster's group into the server's overrides (read at its next start)."""
        family, user = group_of(backend, cluster.parameter_group)
        options = ad.mysqld_options(family, ad.effective_values(family, user))
        kept = {k: v for k, v in self.aurora.read_overrides().items()
                if ad.option_key(k) not in ad.MANAGED_OPTIONS}
        self.aurora.write_overrides({**kept, **options})
        log.info("aurora overrides from group %s: %s", cluster.parameter_group, options)
        return family

    def group_modified(self, backend, group: str, changes: dict[str, tuple[str, str | None]]) -> None:
        cluster = self.bound_cluster(backend)
        if cluster is None or cluster.parameter_group.lower() != group.lower():
            return
        family = self.write_group(backend, cluster)
        table = ad.defaults(family)
        now = {n: v for n, (v, method) in changes.items() if method != "pending-reboot"}
        if any(m == "pending-reboot" or table[n].apply_type == "static" for n, (_, m) in changes.items()):
            cluster.lab_pending_reboot = True
        with self.lock:
            for variable, value in ad.online_settings(family, now):
                try:
                    with self.aurora.connect(connect_timeout=2) as conn, conn.cursor() as cur:
                        cur.execute(f"SET GLOBAL {variable} = %s", (value,))
                    log.info("aurora: SET GLOBAL %s = %s", variable, value)
                except pymysql.err.MySQLError as e:
                    log.warning("aurora: SET GLOBAL %s failed (%s); applied at the next start", variable, e)

    # -- server operations (in a thread; the record shows the outcome) --------
    def run(self, what: str, work, finish) -> None:
        """Run ``work()`` in a thread, then ``finish(error_text_or_None)``."""
        def target() -> None:
            try:
                work()
            except _FAILURES as e:
                log.error("%s failed: %s", what, e)
                finish(" ".join(str(e).split()))
                return
            log.info("%s done", what)
            finish(None)
        threading.Thread(target=target, name=f"lab-{what}", daemon=True).start()

    def start_server(self, *extra: str) -> None:
        try:
            self.aurora.start(extra_args=extra)
        except LabError as e:
            log_file = self.aurora.error_log
            lines = log_file.read_text(errors="replace").splitlines() if log_file.exists() else []
            errors = [line for line in lines if "[ERROR]" in line]
            raise LabError(f"{e.message}: {errors[-1] if errors else 'no error logged'}", hint=e.hint) from e

    def restart(self) -> None:
        with self.lock:
            self.aurora.stop()
            self.start_server()

    def failover(self) -> None:
        """Crash, down (refused), up read-only (error 1290), then writable: the blog's log."""
        with self.lock:
            self.aurora.kill()
            time.sleep(self.timings.failover_down)
            self.start_server("--super-read-only=ON")
            time.sleep(self.timings.failover_read_only)
            with self.aurora.connect() as conn, conn.cursor() as cur:
                cur.execute("SET GLOBAL super_read_only = OFF")
                cur.execute("SET GLOBAL read_only = OFF")

    def restore(self, backend, cluster: DBCluster, bucket: str, prefix: str, account: str,
                admin_user: str, admin_password: str) -> None:
        s3 = self.client("s3", backend.region_name, account)
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
        where = f"s3://{bucket}/{prefix}"
        if any(k.rsplit("/", 1)[-1] in ("xtrabackup_checkpoints", "xtrabackup_info") or
               re.search(r"\.(xbstream|tar|gz)\d*$", k) for k in keys):     # split pieces too: backup.xbstream00
            raise LabError(f"{where} holds a Percona XtraBackup backup, which the lab cannot prepare",
                           hint="upload a MySQL clone-plugin copy instead: CLONE LOCAL DATA DIRECTORY = "
                                "'/dir', then its files under the prefix")
        roots = sorted((k[:-len("mysql.ibd")] for k in keys if k.rsplit("/", 1)[-1] == "mysql.ibd"), key=len)
        if not roots:
            raise LabError(f"{where} holds no MySQL data directory (no mysql.ibd)")
        staging = self.aurora.runtime_dir.parent / f".{self.aurora.name}-restore"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            (staging / "mysql").mkdir(parents=True)     # S3 keeps no empty directory; mysqld needs this one
            for key in keys:
                rel = key[len(roots[0]):]
                if not key.startswith(roots[0]) or not rel or ".." in rel.split("/"):
                    continue
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                if rel.endswith("/"):
                    (staging / rel).mkdir(exist_ok=True)    # a directory marker
                else:
                    s3.download_file(bucket, key, str(staging / rel))
            log.info("restore: %d files from %s", len(keys), where)
            with self.lock:
                self.bind(backend, cluster)
                self.aurora.stop()
                self.aurora.replace_datadir(staging)
                self.write_group(backend, cluster)
                self.start_server("--skip-replica-start")
                self.aurora.bootstrap_labroot()
                with self.aurora.connect(cursorclass=pymysql.cursors.Cursor) as conn:
                    self._schema_directories(conn)
                    forget_source(conn)
                    install_aurora_standin(conn, aurora_version=ad.aurora_version(cluster.engine_version),
                                           admin_user=admin_user, admin_host="%",
                                           admin_password=admin_password)
                    if self.restore_gtids == "lost":
                        forget_gtid_history(conn)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _schema_directories(self, conn) -> None:
        """Recreate the directories of empty schemas, which an upload to S3 loses."""
        with conn.cursor() as cur:
            cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA "
                        "WHERE SCHEMA_NAME NOT IN ('information_schema', 'performance_schema')")
            for (schema,) in cur.fetchall():
                if re.fullmatch(r"[A-Za-z0-9_$]+", schema):   # other names are encoded on disk
                    (self.aurora.datadir / schema).mkdir(exist_ok=True)

    # -- CloudWatch ------------------------------------------------------------
    def replica_lag(self) -> float:
        """Seconds_Behind_Source of the server's replica channel; -1 when not replicating or down."""
        try:
            with self.aurora.connect(connect_timeout=1) as conn, conn.cursor() as cur:
                cur.execute("SHOW REPLICA STATUS")
                rows = cur.fetchall()
        except pymysql.err.MySQLError:
            return -1.0
        row = next((r for r in rows if r.get("Channel_Name") == ""), rows[0] if rows else None)
        if (not row or row["Replica_IO_Running"] != "Yes" or row["Replica_SQL_Running"] != "Yes"
                or row["Seconds_Behind_Source"] is None):
            return -1.0
        return float(row["Seconds_Behind_Source"])

    def publish_metrics(self) -> None:
        """AuroraBinlogReplicaLag of every aurora-mysql cluster (-1 unless the server plays it)."""
        while not self.stopping.wait(self.timings.metric_interval):
            try:
                clusters = [(account, region, backend, cluster)
                            for account, by_region in list(rds_backends.items())
                            for region, backend in list(by_region.items())
                            for cluster in list(backend.clusters.values())
                            if cluster.engine == "aurora-mysql"]
            except RuntimeError as e:          # a request changed moto's records meanwhile: next time
                log.debug("metrics: records changed while read (%s)", e)
                continue
            lag = self.replica_lag() if clusters else -1.0
            for account, region, backend, cluster in clusters:
                value = lag if self.bound_cluster(backend, cluster.db_cluster_identifier) else -1.0
                dims = [[{"Name": "DBClusterIdentifier", "Value": cluster.db_cluster_identifier}]]
                if (writer := cluster.writer) is not None:
                    dims.append([{"Name": "DBInstanceIdentifier", "Value": writer.db_instance_identifier}])
                data = [{"MetricName": "AuroraBinlogReplicaLag", "Dimensions": d, "Value": value,
                         "Unit": "Seconds"} for d in dims]
                try:
                    cloudwatch = self.client("cloudwatch", region, account)
                    cloudwatch.put_metric_data(Namespace="AWS/RDS", MetricData=data)
                except (ClientError, BotoCoreError) as e:
                    log.warning("AuroraBinlogReplicaLag for %s not published: %s",
                                cluster.db_cluster_identifier, e)


def forget_source(conn: pymysql.connections.Connection) -> None:
    """What a restore from S3 does not carry (AWS: user accounts, functions, stored procedures),
    nor the source's replication settings; unlogged, so the GTID history stays the source's."""
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute("RESET REPLICA ALL")
        cur.execute("SELECT ROUTINE_TYPE, ROUTINE_SCHEMA, ROUTINE_NAME FROM information_schema.ROUTINES "
                    "WHERE ROUTINE_SCHEMA NOT IN ('mysql', 'sys')")
        for kind, schema, name in cur.fetchall():
            cur.execute(f"DROP {kind} `{schema.replace('`', '``')}`.`{name.replace('`', '``')}`")
        cur.execute("SELECT User, Host FROM mysql.user WHERE User NOT IN %s AND NOT (User = 'root' AND "
                    "Host = 'localhost') AND NOT (User = 'labroot' AND Host = '127.0.0.1')", (_SYSTEM_USERS,))
        for user, host in cur.fetchall():
            try:
                cur.execute("DROP USER %s@%s", (user, host))
            except pymysql.err.MySQLError as e:    # a definer of a view or trigger: Aurora keeps it orphaned
                log.warning("restore: kept account %s@%s: %s", user, host, e)


def forget_gtid_history(conn: pymysql.connections.Connection) -> None:
    """A restored server that came up without the backup's GTID history (the stand-in's 'lost'
    restore): gtid_executed and gtid_purged empty, the data as it was."""
    with conn.cursor() as cur:
        cur.execute("RESET BINARY LOGS AND GTIDS")
    log.info("restore: the GTID history was not kept (restore_gtids=lost)")


def group_of(backend, name: str) -> tuple[str, dict[str, str]]:
    """(family, values the user set) of a cluster parameter group; ``default.<family>`` is built in."""
    match = _DEFAULT_GROUP.fullmatch(name or "")
    if match and match[1] in ad.FAMILIES:
        return match[1], {}
    group = backend.db_cluster_parameter_groups.get(name or "")
    if group is None:
        raise DBClusterParameterGroupNotFoundError(name)
    return group.db_parameter_group_family, {n: v["ParameterValue"] for n, v in group.parameters.items()
                                             if v.get("ParameterValue") is not None}
