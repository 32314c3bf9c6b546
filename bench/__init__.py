"""`make bench` (``python -m bench``): measurements on a lab instance of the bench's own.

A section is a module with ``run(ctx: Context) -> dict`` (flat keys, numbers or short text),
listed in :data:`SECTIONS`; ``python -m bench`` runs them in order on one lab, prints one table
and writes ``bench/results/<timestamp>.json``.  To add a section (e.g. ``bench.failover``), write
the module and append its name here.

:func:`replicated_lab` is also what the lab integration tests use: a lab instance whose two
servers replicate both ways by GTID, set up directly with the lab's ``labroot`` account and the
lab's AWS endpoint, without the notebooks:

* ``aurora`` gets the same seed as ``onprem`` (unlogged), so both hold the same rows;
* an Aurora cluster record with a parameter group (binlog ROW, GTIDs ON, auto-increment 2/1) is
  created on the lab endpoint, which restarts ``aurora`` with it and then publishes
  ``AuroraBinlogReplicaLag`` for it;
* ``onprem`` gets GTIDs ON (restart) and auto-increment 2/2, its pre-GTID binary logs are purged;
* a replication account on each side (unlogged), ``aurora`` replicates from ``onprem`` through
  ``mysql.rds_set_external_source_with_auto_position``, ``onprem`` from ``aurora`` with
  ``CHANGE REPLICATION SOURCE`` (statements from :mod:`runbook_lib.mysql.dialect`).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook_lib.core.errors import LabError
from runbook_lib.mysql.connection import Endpoint, Server, connect
from runbook_lib.mysql.status import ReplicaStatus

SECTIONS: list[str] = ["bench.checksum", "bench.lag", "bench.failover", "bench.scale"]

CLUSTER_ID, WRITER_ID = "runbook-aurora", "runbook-aurora-1"      # as in parameters/lab.yaml
ENGINE_VERSION, FAMILY = "8.0.mysql_aurora.3.08.0", "aurora-mysql8.0"
GROUP = "runbook-bench-bidir"
GROUP_VALUES = {"binlog_format": "ROW", "gtid-mode": "ON", "enforce_gtid_consistency": "ON",
                "auto_increment_increment": "2", "auto_increment_offset": "1",
                "log_bin_trust_function_creators": "1"}
REPLICATION_USER = "replicator"
ROLES = {"onprem": "source", "aurora": "aurora"}


@dataclass
class Context:
    """One lab instance for a bench run or a test module: its state and ways to reach it."""

    state: Any                          # runbook_lib.lab.control.LabState
    say: Callable[[str], None] = print
    extra: dict = field(default_factory=dict)

    @property
    def instances(self) -> dict:
        from runbook_lib.lab.control import instances
        return instances(self.state)

    def endpoint(self, side: str, **changes: Any) -> Endpoint:
        """labroot's endpoint on 'onprem' (role 'source') or 'aurora'."""
        port = self.state.onprem_port if side == "onprem" else self.state.aurora_port
        return Endpoint(**{"role": ROLES[side], "host": "127.0.0.1", "port": port, "user": "labroot", **changes})

    def server(self, side: str, **changes: Any) -> Server:
        """A new labroot connection (the caller closes it)."""
        return connect(self.endpoint(side, **changes), self.state.passwords["labroot"])

    def opener(self, side: str) -> Callable[[], Server]:
        return lambda: self.server(side)

    def aws(self, service: str) -> Any:
        import boto3
        return boto3.client(service, region_name="us-east-1", endpoint_url=self.state.endpoint_url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def params_file(self, path: Path) -> Path:
        """A runbook parameters file for this lab instance."""
        from runbook_lib.lab.inspect import write_params
        return write_params(self.state, path)

    def statuses(self) -> dict[str, ReplicaStatus | None]:
        out = {}
        for side in ROLES:
            with self.server(side) as s:
                out[side] = ReplicaStatus.read(s)
        return out

    def replicating(self) -> bool:
        return all(st is not None and st.running for st in self.statuses().values())

    def wait_caught_up(self, timeout: float = 60.0) -> None:
        """Both directions running and each side has executed the other's transactions."""
        from runbook_lib.checks.channels import wait_until_caught_up
        from runbook_lib.checks.consistency.chunks import common_point
        deadline = time.monotonic() + timeout
        while not self.replicating():
            if time.monotonic() > deadline:
                raise LabError(f"replication did not start: {self.statuses()}")
            time.sleep(0.2)
        with self.server("onprem") as a, self.server("aurora") as b:
            point = common_point(a, b)
            wait_until_caught_up(a, point, timeout)
            wait_until_caught_up(b, point, timeout)


def replicated_lab(name: str, port_base: int, rows: int, *, fresh: bool = True,
                   say: Callable[[str], None] = print) -> Context:
    """Bring up lab ``name`` (destroyed first when ``fresh``) and replicate it both ways."""
    from runbook_lib.lab import control
    if fresh:
        control.down(name, destroy=True, say=lambda *_: None)
    ctx = Context(control.up(name, port_base=port_base, persona_rows=rows, aurora="3", say=say), say)
    if ctx.statuses()["aurora"] is not None:
        ctx.wait_caught_up()
        return ctx
    started = time.monotonic()
    _seed_aurora(ctx)
    _aurora_cluster(ctx)
    _gtids_on_onprem(ctx)
    _replicate_both_ways(ctx)
    _binlog_retention(ctx)
    ctx.wait_caught_up()
    say(f"lab {name!r}: two-way GTID replication set up in {time.monotonic() - started:.1f} s")
    return ctx


_SHARED: dict[str, Context] = {}


def shared_replicated_lab(name: str, port_base: int, rows: int, *, fresh: bool = True) -> tuple[Context, bool]:
    """One :func:`replicated_lab` per process (test modules share it); True when this call built it."""
    if name in _SHARED:
        return _SHARED[name], False
    _SHARED[name] = replicated_lab(name, port_base, rows, fresh=fresh, say=lambda *_: None)
    return _SHARED[name], True


def take_down(ctx: Context, *, destroy: bool = True) -> None:
    from runbook_lib.lab import control
    control.down(ctx.state.name, destroy=destroy, say=lambda *_: None)


def _seed_aurora(ctx: Context) -> None:
    from runbook_lib.lab import dataset
    with ctx.instances["aurora"].connect() as conn:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_log_bin = 0")
        dataset.seed(conn, persona_rows=ctx.state.persona_rows, app_password=ctx.state.passwords["apps"])


def _aurora_cluster(ctx: Context, timeout: float = 120.0) -> None:
    rds = ctx.aws("rds")
    rds.create_db_cluster_parameter_group(DBClusterParameterGroupName=GROUP, DBParameterGroupFamily=FAMILY,
                                          Description="bench/test: two-way replication")
    rds.modify_db_cluster_parameter_group(DBClusterParameterGroupName=GROUP, Parameters=[
        {"ParameterName": k, "ParameterValue": v, "ApplyMethod": "pending-reboot"} for k, v in GROUP_VALUES.items()])
    rds.create_db_cluster(DBClusterIdentifier=CLUSTER_ID, Engine="aurora-mysql", EngineVersion=ENGINE_VERSION,
                          DBClusterParameterGroupName=GROUP, MasterUsername="admin",
                          MasterUserPassword=ctx.state.passwords["aurora_admin"])
    deadline = time.monotonic() + timeout
    while (status := rds.describe_db_clusters(DBClusterIdentifier=CLUSTER_ID)["DBClusters"][0]["Status"]) != "available":
        if status == "failed" or time.monotonic() > deadline:
            raise LabError(f"lab cluster {CLUSTER_ID} is {status}", hint=f"see {ctx.state.home / 'endpoint.log'}")
        time.sleep(0.3)
    rds.create_db_instance(DBInstanceIdentifier=WRITER_ID, DBClusterIdentifier=CLUSTER_ID, Engine="aurora-mysql",
                           DBInstanceClass="db.r6g.large")


def _gtids_on_onprem(ctx: Context) -> None:
    inst = ctx.instances["onprem"]
    inst.write_overrides({**inst.read_overrides(), "gtid_mode": "ON", "enforce_gtid_consistency": "ON",
                          "auto_increment_increment": "2", "auto_increment_offset": "2"})
    inst.stop()
    inst.start()
    with ctx.server("onprem") as s:
        current = s.query("SHOW BINARY LOGS")[-1]["Log_name"]
        s.execute("PURGE BINARY LOGS TO %s", (current,))     # the pre-GTID history
        if s.scalar("SELECT @@GLOBAL.gtid_executed"):
            raise LabError("onprem has GTIDs already; build the lab fresh")


def _replicate_both_ways(ctx: Context) -> None:
    password = ctx.state.passwords["replicator"]
    for side in ROLES:
        with ctx.server(side) as s:
            s.execute("SET SESSION sql_log_bin = 0")
            s.execute(s.dialect.create_replication_user(REPLICATION_USER, "%", password))
            s.execute(s.dialect.grant_replication(REPLICATION_USER, "%"))
    with ctx.server("aurora") as s:
        s.execute(s.dialect.set_external_source("127.0.0.1", ctx.state.onprem_port, REPLICATION_USER, password))
        s.execute(s.dialect.set_binlog_source_ssl(True))     # ssl_encryption is not implemented on Aurora
        s.execute(s.dialect.start_replication())
    with ctx.server("onprem") as s:
        s.execute(s.dialect.change_source("127.0.0.1", ctx.state.aurora_port, REPLICATION_USER, password,
                                          ssl=True, connect_retry=2))
        s.execute(s.dialect.start_replica())


def _binlog_retention(ctx: Context) -> None:
    """Binary log retention on both sides as phases 02 and 05 leave it (parameters/lab.yaml), so that
    phase 06's settings check finds nothing drifted on this lab either."""
    from runbook_lib.context.params import load_parameters
    p = load_parameters(Path(__file__).resolve().parents[1] / "parameters" / "lab.yaml")
    with ctx.server("onprem") as s:
        s.execute(s.dialect.set_global("binlog_expire_logs_seconds", p.source_binlog_expire_seconds))
    with ctx.server("aurora") as s:
        s.execute(s.dialect.set_binlog_retention(p.aurora_binlog_retention_hours))


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def hold_in_buffer_pool(ctx: Context, schema: str = "app_crm", cap_mb: int = 4096, timeout: float = 120.0) -> int:
    """Grow both servers' buffer pool (online) to hold ``schema``'s data and indexes, at most ``cap_mb``;
    the MB each now has.  The lab's servers start with 256 MB so that a trainee's laptop runs two; a
    production server holds its working set, and a 10M-row table read through the OS page cache 16 KB
    at a time would measure the lab's memory setting, not a checksum's cost (the same for every tool)."""
    sizes = []
    for side in ROLES:
        with ctx.server(side) as s:
            s.execute("SET SESSION information_schema_stats_expiry = 0")       # sizes as of now
            s.execute(f"ANALYZE LOCAL TABLE {', '.join(f'{schema}.{t}' for t in _tables(s, schema))}")
            need = int(s.scalar("SELECT SUM(data_length + index_length) FROM information_schema.tables "
                                "WHERE table_schema = %s", (schema,)) or 0) * 5 // 4
            unit = int(s.scalar("SELECT @@innodb_buffer_pool_chunk_size * @@innodb_buffer_pool_instances"))
            want = min(cap_mb << 20, -(-need // unit) * unit)
            if want > int(s.scalar("SELECT @@innodb_buffer_pool_size")):
                s.execute(f"SET GLOBAL innodb_buffer_pool_size = {want}")
                deadline = time.monotonic() + timeout
                while "Completed" not in str(s.scalar("SELECT variable_value FROM performance_schema.global_status "
                                                      "WHERE variable_name = 'Innodb_buffer_pool_resize_status'")
                                             or "Completed"):
                    if time.monotonic() > deadline:
                        raise LabError(f"{side}: the buffer pool did not grow to {want >> 20} MB in {timeout:g} s")
                    time.sleep(0.5)
            sizes.append(int(s.scalar("SELECT @@innodb_buffer_pool_size")) >> 20)
    return min(sizes)


def _tables(server: Server, schema: str) -> list[str]:
    return [str(r["t"]) for r in server.query("SELECT table_name AS t FROM information_schema.tables "
                                               "WHERE table_schema = %s AND table_type = 'BASE TABLE'", (schema,))]
