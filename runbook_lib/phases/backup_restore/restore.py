"""Phase 4, the restore half: a new Aurora cluster from the backup in S3, and its checks.

* :func:`plan_restore` (step ``restore``): ``RestoreDBClusterFromS3`` with the phase-3 parameter
  group, a wait until the cluster is available, then the writer (and reader) instance.  An existing
  cluster is never restored over: it gets only its missing instances.
* :func:`cluster_status` waits for the cluster; :func:`restore_prerequisites` reads what a restore
  from S3 demands of the source; :func:`verify` and :func:`row_counts` check the result on AWS and on
  the restored server against the backup's record (:class:`~runbook_lib.phases.backup_restore.backup.Backup`).
* The GTID and row-count checks describe the moment of the restore: once Aurora has moved on from
  the backup's position (replication, later phases; :func:`later_transactions`), a run of the phase
  checks that Aurora still contains the position and shows the row counts for information only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbook_lib.aws.calls import aws_call
from runbook_lib.aws.clusters import (
    FAILED_STATES,
    Cluster,
    cluster_events,
    describe_cluster,
    wait_instance_available,
    wait_until_available,
)
from runbook_lib.aws.s3 import bucket_exists, s3_objects
from runbook_lib.checks.channels import executed_gtids
from runbook_lib.core.approval import Plan, Step
from runbook_lib.core.display import CheckResult, comparison_frame
from runbook_lib.core.errors import AwsError, CheckFailed, NotApplied
from runbook_lib.core.redact import MASK
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.phases.backup_restore.backup import Backup, app_tables, count_rows
from runbook_lib.phases.parameter_group import steps as parameter_group
from runbook_lib.phases.preflight.restore_s3 import minor_version_row

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from runbook_lib.context.params import RunbookParameters
    from runbook_lib.context.session import Session


# --- the cluster -----------------------------------------------------------------------------------

def cluster_status(rb: Session, timeout_minutes: float = 240) -> Cluster:
    """The cluster once available (waits while AWS is still creating it); NotApplied if there is none."""
    return wait_until_available(rb.aws("rds"), rb.params.aurora_cluster_id, timeout_minutes)


# --- step: restore ---------------------------------------------------------------------------------

def restore_request(p: RunbookParameters, password: str, source_version: str, s3_prefix: str, *,
                    subnet_group: str = "", security_groups: tuple[str, ...] = (),
                    encrypted: bool = True) -> dict:
    """The RestoreDBClusterFromS3 arguments (pure)."""
    request = {"DBClusterIdentifier": p.aurora_cluster_id, "Engine": "aurora-mysql",
               "EngineVersion": p.aurora_engine_version, "DBClusterParameterGroupName": p.aurora_parameter_group,
               "MasterUsername": p.aurora_admin_user, "MasterUserPassword": password, "Port": p.aurora_port,
               "SourceEngine": "mysql", "SourceEngineVersion": source_version, "S3BucketName": p.s3_bucket,
               "S3Prefix": s3_prefix, "S3IngestionRoleArn": p.restore_role_arn, "StorageEncrypted": encrypted,
               "Tags": [{"Key": "created-by", "Value": "aurora-fallback-runbook"}]}
    if subnet_group:
        request["DBSubnetGroupName"] = subnet_group
    if security_groups:
        request["VpcSecurityGroupIds"] = list(security_groups)
    return request


def _instances(p: RunbookParameters) -> list[str]:
    return [p.aurora_writer_instance] + ([p.aurora_reader_instance] if p.aurora_reader_instance else [])


@dataclass(frozen=True)
class RestoreStep:
    """``rb.gate.apply(step.plan, step.apply)``: restore (if no cluster), wait, create missing instances."""

    plan: Plan
    request: dict = field(default_factory=dict, repr=False)
    instances: tuple[str, ...] = ()
    timeout_minutes: float = 240
    rb: Any = field(default=None, repr=False, compare=False)

    def apply(self) -> pd.DataFrame:
        p, rds = self.rb.params, self.rb.aws("rds")
        if self.request:
            aws_call(rds, "restore_db_cluster_from_s3", **self.request)
        wait_until_available(rds, p.aurora_cluster_id, self.timeout_minutes)
        for instance in self.instances:
            aws_call(rds, "create_db_instance", DBInstanceIdentifier=instance, DBInstanceClass=p.aurora_instance_class,
                     Engine="aurora-mysql", DBClusterIdentifier=p.aurora_cluster_id)
        for instance in self.instances:
            wait_instance_available(rds, instance, self.timeout_minutes)
        self.rb.close()   # a connection opened before the restore would reach the old server
        return describe_cluster(rds, p.aurora_cluster_id).to_frame()


def plan_restore(rb: Session, backup: Backup | None, *, timeout_minutes: float = 240, subnet_group: str = "",
                 security_groups: list[str] | tuple[str, ...] = (), encrypted: bool = True) -> RestoreStep:
    """Restore only when the cluster does not exist; an existing one gets only its missing instances."""
    p, rds = rb.params, rb.aws("rds")
    title, target = f"restore Aurora cluster {p.aurora_cluster_id}", f"AWS RDS {p.aws_region}"
    cluster = describe_cluster(rds, p.aurora_cluster_id)
    steps, request = [], {}
    if cluster is not None:
        if cluster.status in FAILED_STATES:
            raise AwsError("DescribeDBClusters", f"cluster {p.aurora_cluster_id} exists and is {cluster.status}: "
                           f"{cluster_events(rds, p.aurora_cluster_id) or 'no event'}",
                           hint="this runbook never restores over an existing cluster: delete it, then run again")
        if cluster.parameter_group != p.aurora_parameter_group:
            raise CheckFailed(f"cluster {p.aurora_cluster_id}", ["parameter group"],
                              hint=f"it exists with group {cluster.parameter_group!r}; this runbook never restores "
                                   f"over an existing cluster: attach {p.aurora_parameter_group!r} and reboot, or "
                                   "choose another aurora_cluster_id")
        print(f"Cluster {p.aurora_cluster_id} exists ({cluster.status}, group {cluster.parameter_group}): "
              "nothing to restore - a restore never runs over an existing cluster.")
        missing = tuple(i for i in _instances(p) if i not in {m[0] for m in cluster.members})
    else:
        if backup is None:
            raise NotApplied(f"a completed backup in {p.backup_dir}", "backup")
        parameter_group.compare(rb)                    # NotApplied until phase 3 is done
        prefix = backup.s3_prefix(p)
        if not bucket_exists(rb.aws("s3"), p.s3_bucket) or len(s3_objects(rb.aws("s3"), p.s3_bucket, prefix)) < backup.files:
            raise NotApplied(f"the backup in s3://{p.s3_bucket}/{prefix}", "backup")
        request = restore_request(p, rb.secret("aurora_admin_password"), backup.source_version, prefix,
                                  subnet_group=subnet_group, security_groups=tuple(security_groups),
                                  encrypted=encrypted)
        shown = ", ".join(f"{k}={MASK if k == 'MasterUserPassword' else v}" for k, v in request.items() if k != "Tags")
        steps += [Step(target, "RestoreDBClusterFromS3", shown, undo=f"DeleteDBCluster {p.aurora_cluster_id}"),
                  Step(target, "wait", f"DescribeDBClusters until available (at most {timeout_minutes:g} min)",
                       reversible=True, undo="—")]
        missing = tuple(_instances(p))
    for instance in missing:
        role = "writer" if instance == p.aurora_writer_instance else "reader"
        steps.append(Step(target, f"CreateDBInstance ({role})", f"{instance} {p.aurora_instance_class} in "
                          f"{p.aurora_cluster_id}", reversible=True, undo=f"DeleteDBInstance {instance}"))
    notes = ("Not migrated by a restore from S3: user accounts, stored routines, time zone tables. The cluster "
             "is created with the phase-3 parameter group (binary log on, GTIDs on).") if request else ""
    return RestoreStep(Plan("restore", title, tuple(steps), notes), request, missing, timeout_minutes, rb)


# --- checks ----------------------------------------------------------------------------------------

def restore_prerequisites(rb: Session) -> list[CheckResult]:
    """What a restore from S3 demands of the source, and what it leaves behind (cheap to read)."""
    p, source = rb.params, rb.source()
    v = source.variables("innodb_page_size", "innodb_data_file_path")
    ident, major = source.identity, p.aurora_engine_version.split(".mysql_aurora.")[0]
    same = ident.major == major
    lab = p.backup_method == "clone"
    data_files = [f for f in (v["innodb_data_file_path"] or "").split(";") if f]
    users = source.scalar("SELECT COUNT(*) FROM mysql.user WHERE User NOT IN "
                          "('root', 'mysql.sys', 'mysql.session', 'mysql.infoschema') AND User <> ''")
    routines = source.scalar("SELECT COUNT(*) FROM information_schema.ROUTINES "
                             "WHERE ROUTINE_SCHEMA NOT IN ('mysql', 'sys')")
    zones = source.scalar("SELECT COUNT(*) FROM mysql.time_zone_name")
    one_ibdata = len(data_files) == 1 and data_files[0].startswith("ibdata1:")
    return [
        CheckResult("same major version", ident.major, f"{major} ({p.aurora_engine_version})",
                    "pass" if same else ("warn" if lab else "fail"),
                    "" if same else ("the lab's stand-in restores the source's own version" if lab else
                                     "restore from S3 needs a backup of the same major version: pick that "
                                     "aurora_engine_version, or upgrade the source first")),
        minor_version_row(ident.version, ident.version_text, p.aurora_engine_version),
        CheckResult.equal("parameter group family", f"aurora-mysql{major}", p.aurora_parameter_group_family,
                          advice="the group's family must match aurora_engine_version, or the restore is refused"),
        CheckResult.equal("InnoDB page size", v["innodb_page_size"], "16384",
                          advice="restore from S3 supports only 16 KB pages: use another migration method"),
        CheckResult("one system tablespace file (ibdata1)", v["innodb_data_file_path"], "ibdata1",
                    "pass" if one_ibdata else "fail",
                    "" if one_ibdata else "several or renamed ibdata files are not supported by restore from S3"),
        CheckResult("full backup (no --tables/--databases)", p.backup_method, "full", "pass"),
        CheckResult("user accounts (not migrated)", users, "", "info",
                    "create the application accounts on Aurora after the restore"),
        CheckResult("stored routines (not migrated)", routines, "", "info",
                    "05_replication brings the functions and procedures to Aurora by replication once both "
                    "directions run (step 'routines'; by hand before MySQL 8.0.29)"),
        CheckResult("time zone tables (not migrated)", zones, "", "info",
                    "Aurora has its own time zone tables; set time_zone in the parameter group if needed"),
    ]


def verify(rb: Session, backup: Backup | None, cluster: Cluster | None = None) -> list[CheckResult]:
    """The restored cluster on AWS and on its server: group, status, members, admin login, GTIDs."""
    p = rb.params
    cluster = cluster or describe_cluster(rb.aws("rds"), p.aurora_cluster_id)
    if cluster is None:
        raise NotApplied(f"cluster {p.aurora_cluster_id}", "restore")
    members = {m[0]: m for m in cluster.members}
    out = [CheckResult.equal("cluster status", "available", cluster.status, advice="wait, or read its events"),
           CheckResult.equal("cluster parameter group", p.aurora_parameter_group, cluster.parameter_group,
                             advice="the cluster was not created with the phase-3 group")]
    for instance, is_writer, pg_status in cluster.members:
        out.append(CheckResult.equal(f"{instance}: parameter group", "in-sync", pg_status,
                                     advice="reboot the instance so static parameters take effect"))
    for instance in _instances(p):
        want = instance == p.aurora_writer_instance
        have = members[instance][1] if instance in members else None
        out.append(CheckResult(f"{instance}: member", "writer" if want else "reader",
                               "missing" if have is None else ("writer" if have else "reader"),
                               "pass" if have is want else "fail", "" if have is want else
                               "approve step 'restore' to create it" if have is None else "fail over to the writer"))
    aurora = rb.aurora()
    out.append(CheckResult("connect as admin", p.aurora_admin_user, aurora.identity.describe(), "pass"))
    v = aurora.variables("gtid_mode", "log_bin", "gtid_executed")
    out.append(CheckResult.equal("gtid_mode", "ON", v["gtid_mode"], advice="the group's gtid-mode is not in effect"))
    out.append(CheckResult.equal("binary log", "ON", v["log_bin"], advice="the group's binlog_format is not in effect"))
    out.append(gtid_check(backup, GtidSet(v["gtid_executed"] or ""), p.backup_dir))
    return out


def later_transactions(backup: Backup, executed: GtidSet) -> GtidSet:
    """What Aurora (``executed``: its gtid_executed) has run after the backup's position, when it holds
    all of the position: replication or writes since the restore.  Empty while Aurora is still at the
    position, or when it lacks part of it."""
    return executed - backup.gtid_set if backup.gtid_set < executed else GtidSet()


def _transactions(n: int) -> str:
    return f"{n} transaction" + ("" if n == 1 else "s")


def gtid_check(backup: Backup | None, restored: GtidSet, backup_dir: str) -> CheckResult:
    """Aurora's gtid_executed against the backup's position (pure).

    Equal right after the restore; once Aurora has moved on (replication, later phases), it must
    still contain the whole position.  Lacking part of it fails: auto-position would start wrong.
    """
    item, position = "gtid_executed = backup position", str(backup.gtid_set) if backup else ""
    later = later_transactions(backup, restored) if backup else GtidSet()
    if backup is None:
        return CheckResult(item, "(no backup record)", str(restored), "warn",
                           f"no manifest in {backup_dir}: compare with the backup's position by hand")
    if restored == backup.gtid_set:
        return CheckResult(item, position, str(restored), "pass")
    if later:
        return CheckResult("gtid_executed contains backup position", position, str(restored), "pass",
                           f"Aurora has moved on since the restore ({_transactions(later.count())} later, "
                           "e.g. by replication): the whole backup position is still there")
    if not backup.gtid_exact and restored <= backup.gtid_set:
        return CheckResult(item, position, str(restored), "warn",
                           "the position was read after a clone that ran during writes: Aurora's own "
                           "gtid_executed is the backup's position, and replication starts from it")
    return CheckResult(item, position, str(restored), "fail",
                       f"Aurora lacks {backup.gtid_set - restored}: auto-positioning would start in the wrong "
                       "place; approve step 'restore' so the GTID position cell declares it executed "
                       "(mysql.rds_gtid_purged, Aurora 3.04+), or restore again from a new backup")


@dataclass(frozen=True)
class RowCounts:
    """Rows per application table: the source at backup time next to Aurora now.

    They are compared only while Aurora is still at the backup's position; once it has moved on
    (``later`` transactions after it, e.g. replication), they are shown for information.
    """

    rows: tuple[tuple[str, Any, Any], ...]
    at_position: bool = True       # the source's counts were taken at the backup's GTID position
    recorded: bool = True          # False: no backup record to compare with
    later: int = 0                 # transactions Aurora ran after the backup's position

    def to_frame(self) -> pd.DataFrame:
        """Columns item, source, aurora, same."""
        return comparison_frame(self.rows)

    @property
    def differ(self) -> list[str]:
        return [t for t, a, b in self.rows if str(a) != str(b)]

    @property
    def verdict(self) -> str:
        if not self.recorded:
            return "WARN: row counts: no backup record to compare with"
        if self.later:
            return (f"INFO: row counts: Aurora has moved on since the restore ({_transactions(self.later)} "
                    "after the backup's position, e.g. by replication): shown for information, not compared; "
                    "the validation phase (06_validation) compares both sides")
        if not self.differ:
            return f"PASS: row counts: {len(self.rows)} tables, Aurora has the source's rows at backup time"
        word = "FAIL" if self.at_position else "WARN (the source took writes while it was counted)"
        return f"{word}: row counts differ in {len(self.differ)} of {len(self.rows)} tables: {', '.join(self.differ)}"

    def require(self) -> None:
        """CheckFailed when the verdict is FAIL."""
        if self.verdict.startswith("FAIL"):
            raise CheckFailed("row counts", self.differ, table=self.to_frame(),
                              hint="the restored data is not the backup's: restore again from a new backup")


def row_counts(rb: Session, backup: Backup | None) -> RowCounts:
    """Count every table of the backup's record on Aurora (the source's counts come from the record).

    Aurora's GTIDs are read after counting: if it was still at the backup's position then, the counts
    were taken there too.
    """
    if backup is None:
        return RowCounts((), recorded=False)
    aurora = rb.aurora()
    present = set(app_tables(aurora, rb.params.app_schemas))
    here = dict(count_rows(aurora, [t for t, _ in backup.counts if t in present]))
    later = later_transactions(backup, executed_gtids(aurora)).count()
    return RowCounts(tuple((t, n, here.get(t, "missing")) for t, n in backup.counts), backup.counts_at_position,
                     later=later)


def figures(backup: Backup | None, cluster: Cluster, checks: list[CheckResult], counts: RowCounts) -> dict:
    """What the run summary keeps of this phase."""
    from runbook_lib.core.display import verdict
    return {"backup": backup.name if backup else "", "gtid_position": backup.gtid if backup else "",
            "backup_bytes": backup.bytes if backup else 0, "cluster": cluster.identifier,
            "status": cluster.status, "members": len(cluster.members),
            "verdict": verdict(checks, "restore"), "row_counts": counts.verdict}
