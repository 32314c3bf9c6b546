"""Phase 4, the backup half: a physical backup of the source, its manifest, its upload to S3.

* :func:`plan_backup` (step ``backup``): Percona XtraBackup (its password only in a 0600 option
  file; ``completed OK!`` checked; the GTID position from ``xtrabackup_binlog_info``), or in the lab
  (``backup_method: clone``) MySQL's clone plugin, which also carries the GTID history.  A manifest
  ``<backup_dir>/<name>.runbook.json`` records the backup (:class:`Backup`): its GTID position and
  the source's row counts per application table.  :func:`latest_backup` reads it back.
* :func:`plan_upload` (step ``backup``): the backup folder to ``s3://<s3_bucket>/<s3_prefix><name>/``
  with a progress bar over bytes; files already there with the same size are skipped.

Both plan nothing once the cluster exists (:mod:`runbook_lib.phases.backup_restore.restore` never restores over it).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook_lib.aws.calls import aws_call, aws_error
from runbook_lib.aws.clusters import describe_cluster
from runbook_lib.aws.s3 import bucket_exists, s3_objects
from runbook_lib.core.approval import Plan, Step
from runbook_lib.core.errors import AwsError, CheckFailed, NotApplied, ParameterError, RunbookError
from runbook_lib.core.redact import MASK
from runbook_lib.mysql.gtid import GtidSet

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from runbook_lib.context.params import RunbookParameters
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

MANIFEST = ".runbook.json"

SYSTEM_SCHEMAS = ("mysql", "sys", "performance_schema", "information_schema", "runbook")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# --- the backup as a value ----------------------------------------------------------------------

@dataclass(frozen=True)
class Backup:
    """One completed backup, as its manifest records it."""

    name: str                    # folder name under backup_dir (UTC timestamp)
    directory: str
    method: str                  # xtrabackup | clone
    finished: str
    gtid: str                    # the GTID position of the backup (text of a GTID set)
    gtid_exact: bool             # False: the source took writes during a clone (position read after it)
    source_uuid: str
    source_version: str
    files: int
    bytes: int
    counts: tuple[tuple[str, int], ...] = ()   # (schema.table, rows) on the source at backup time
    counts_at_position: bool = True            # the source's gtid_executed was the position while counting
    log: str = ""

    @property
    def gtid_set(self) -> GtidSet:
        return GtidSet(self.gtid)

    def s3_prefix(self, params: RunbookParameters) -> str:
        return f"{params.s3_prefix}{self.name}/"

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd
        rows = [("backup", self.directory), ("method", self.method), ("finished (UTC)", self.finished),
                ("GTID position", self.gtid or "(empty)"),
                ("position read", "from the backup" if self.gtid_exact else "after the backup (writes ran)"),
                ("source", f"MySQL {self.source_version}, server_uuid {self.source_uuid}"),
                ("size", f"{self.files} files, {self.bytes / 2**20:,.1f} MiB"),
                ("application tables counted", len(self.counts))] + ([("log", self.log)] if self.log else [])
        return pd.DataFrame(rows, columns=["item", "value"])

    def save(self, backup_dir: str | Path) -> Path:
        path = Path(backup_dir) / f"{self.name}{MANIFEST}"
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Backup:
        data = json.loads(Path(path).read_text())
        data["counts"] = tuple(tuple(c) for c in data.get("counts", ()))
        return cls(**data)


def backups(backup_dir: str | Path) -> list[Backup]:
    """Completed backups under ``backup_dir`` (a manifest and its folder), oldest first."""
    folder = Path(backup_dir)
    found = [Backup.load(p) for p in sorted(folder.glob(f"*{MANIFEST}"))] if folder.is_dir() else []
    return [b for b in found if Path(b.directory).is_dir()]


def parse_binlog_info(text: str) -> tuple[str, int, str]:
    """``xtrabackup_binlog_info`` -> (binlog file, position, GTID set text; '' without GTIDs)."""
    parts = text.strip().split("\t", 2)
    if len(parts) < 2 or not parts[1].strip().isdigit():
        raise RunbookError(f"xtrabackup_binlog_info is not 'file<TAB>position[<TAB>gtid set]': {text[:80]!r}",
                           hint="the backup did not record its binary log position; take it again")
    return parts[0], int(parts[1]), str(GtidSet(parts[2] if len(parts) > 2 else ""))


def completed_ok(log_text: str) -> bool:
    """XtraBackup ends a successful log with '... completed OK!'."""
    lines = [ln for ln in log_text.strip().splitlines() if ln.strip()]
    return bool(lines) and lines[-1].rstrip().endswith("completed OK!")


def option_file_text(user: str, password: str) -> str:
    """A ``[client]`` option file; the value quoted with MySQL's escapes."""
    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"[client]\nuser={quoted(user)}\npassword={quoted(password)}\n"


def backup_usable(backup: Backup | None, source_uuid: str, executed: GtidSet, purged: GtidSet) -> str:
    """Why ``backup`` cannot seed replication from this source ('' when it can)."""
    if backup is None:
        return "no completed backup"
    if backup.source_uuid != source_uuid:
        return f"backup {backup.name} is of another server ({backup.source_uuid})"
    if not backup.gtid_set <= executed:
        return f"backup {backup.name} holds transactions the source does not have"
    if not purged <= backup.gtid_set:
        return f"the source purged binary logs after backup {backup.name} ({purged - backup.gtid_set})"
    return ""


# --- reading the source --------------------------------------------------------------------------

def app_tables(server: Server, schemas: list[str]) -> list[str]:
    """``schema.table`` of every base table in ``schemas`` (all non-system schemas when empty)."""
    if schemas:
        where, args = f"TABLE_SCHEMA IN ({', '.join(['%s'] * len(schemas))})", tuple(schemas)
    else:
        where, args = f"TABLE_SCHEMA NOT IN ({', '.join(['%s'] * len(SYSTEM_SCHEMAS))})", SYSTEM_SCHEMAS
    rows = server.query("SELECT TABLE_SCHEMA s, TABLE_NAME t FROM information_schema.TABLES "
                        f"WHERE TABLE_TYPE = 'BASE TABLE' AND {where} ORDER BY 1, 2", args)
    return [f"{r['s']}.{r['t']}" for r in rows]


def count_rows(server: Server, tables: list[str]) -> tuple[tuple[str, int], ...]:
    out = []
    for table in tables:
        schema, name = table.split(".", 1)
        out.append((table, int(server.scalar(f"SELECT COUNT(*) FROM {_q(schema)}.{_q(name)}"))))
    return tuple(out)


def _gtids(server: Server) -> tuple[GtidSet, GtidSet]:
    v = server.variables("gtid_executed", "gtid_purged")
    return GtidSet(v["gtid_executed"] or ""), GtidSet(v["gtid_purged"] or "")


def _require_gtids(server: Server) -> None:
    mode = server.variables("gtid_mode")["gtid_mode"]
    if mode != "ON":
        raise NotApplied(f"gtid_mode=ON on the source (it is {mode})", "source_binlog")


# --- step: backup ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BackupStep:
    """``rb.gate.apply(step.plan, step.apply)``."""

    plan: Plan
    name: str = ""
    command: tuple[str, ...] = ()
    rb: Any = field(default=None, repr=False, compare=False)

    def apply(self) -> pd.DataFrame:
        rb, p = self.rb, self.rb.params
        source = rb.source()
        # XtraBackup's copy holds all the data: only its owner may read it; a clone is written by mysqld
        Path(p.backup_dir).mkdir(parents=True, exist_ok=True, mode=0o750 if p.backup_method == "clone" else 0o700)
        target = Path(p.backup_dir) / self.name
        if p.backup_method == "clone":
            before, _ = _gtids(source)
            if not source.query("SELECT 1 FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone' "
                                "AND PLUGIN_STATUS = 'ACTIVE'"):
                source.execute("INSTALL PLUGIN clone SONAME 'mysql_clone.so'")
            source.execute("CLONE LOCAL DATA DIRECTORY = %s", (str(target),))
            status = source.query_one("SELECT STATE, ERROR_NO, ERROR_MESSAGE, GTID_EXECUTED "
                                      "FROM performance_schema.clone_status") or {}
            if status.get("STATE") != "Completed":
                raise RunbookError(f"clone ended {status.get('STATE')}: {status.get('ERROR_MESSAGE')}",
                                   hint=f"see the source's error log; remove {target} and run again")
            after, _ = _gtids(source)
            # a local clone leaves clone_status.GTID_EXECUTED empty: the source's own set is the position
            gtid, exact, log = status.get("GTID_EXECUTED") or str(after), before == after, ""
        else:
            gtid, exact, log = _run_xtrabackup(rb, self.command, target)
        counted_before = _gtids(source)[0]
        counts = count_rows(source, app_tables(source, p.app_schemas))
        files = [f for f in target.rglob("*") if f.is_file()]
        backup = Backup(self.name, str(target), p.backup_method, _now(), gtid, exact,
                        source.identity.server_uuid, source.identity.version_text.split("-")[0], len(files),
                        sum(f.stat().st_size for f in files), counts,
                        counted_before == GtidSet(gtid) == _gtids(source)[0], log)
        backup.save(p.backup_dir)
        return backup.to_frame()


def _xtrabackup_command(p: RunbookParameters, option_file: Path, target: Path) -> tuple[str, ...]:
    tls = {"disabled": ["--ssl-mode=DISABLED"], "required": ["--ssl-mode=REQUIRED"],
           "verify_ca": ["--ssl-mode=VERIFY_CA", f"--ssl-ca={p.source_tls_ca}"]}.get(p.source_tls, [])
    return (p.xtrabackup_command, f"--defaults-extra-file={option_file}", f"--host={p.source_host}",
            f"--port={p.source_port}", *tls, "--backup", f"--parallel={p.xtrabackup_parallel}",
            f"--target-dir={target}")


def _run_xtrabackup(rb: Session, command: tuple[str, ...], target: Path) -> tuple[str, bool, str]:
    p = rb.params
    option_file = Path(command[1].split("=", 1)[1])
    log = Path(p.backup_dir) / f"{target.name}.xtrabackup.log"
    fd = os.open(option_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(option_file_text(p.source_admin_user, rb.secret("source_admin_password")))
        with log.open("w") as out:
            rc = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                check=False).returncode
    except OSError as e:
        raise RunbookError(f"cannot run {command[0]}: {e}", hint="check xtrabackup_command and backup_dir") from e
    finally:
        option_file.unlink(missing_ok=True)
    text = log.read_text(errors="replace")
    if rc != 0 or not completed_ok(text):
        last = (text.strip().splitlines() or ["(empty log)"])[-1]
        raise RunbookError(f"xtrabackup did not complete OK (exit code {rc}): {last}",
                           hint=f"read {log}; fix the cause, remove {target} and run this cell again")
    _, _, gtid = parse_binlog_info((target / "xtrabackup_binlog_info").read_text())
    return gtid, True, str(log)


def plan_backup(rb: Session) -> BackupStep:
    """Empty when the cluster exists, or when a completed backup can still seed replication."""
    p = rb.params
    if describe_cluster(rb.aws("rds"), p.aurora_cluster_id) is not None:
        print(f"Cluster {p.aurora_cluster_id} exists: no backup is needed.")
        return BackupStep(Plan("backup", "back up the source"), rb=rb)
    source = rb.source()
    _require_gtids(source)
    executed, purged = _gtids(source)
    found = backups(p.backup_dir)
    why_not = backup_usable(found[-1] if found else None, source.identity.server_uuid, executed, purged)
    if not why_not:
        print(f"Backup {found[-1].name} (GTID {found[-1].gtid or 'empty'}) can still seed replication: reused.")
        return BackupStep(Plan("backup", "back up the source", ()), rb=rb)
    print(f"A new backup is needed: {why_not}.")
    _check_space(source, p.backup_dir)
    name = _now()
    target = Path(p.backup_dir) / name
    where = f"source {p.source_host}:{p.source_port}"
    steps = []
    if p.backup_method == "clone":
        if not source.query("SELECT 1 FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'clone'"):
            steps.append(Step(where, "install the clone plugin", "INSTALL PLUGIN clone SONAME 'mysql_clone.so'",
                              reversible=True, undo="UNINSTALL PLUGIN clone"))
        steps.append(Step(where, "physical copy (lab stand-in for XtraBackup)",
                          f"CLONE LOCAL DATA DIRECTORY = '{target}'", reversible=True, undo=f"rm -r {target}"))
        command: tuple[str, ...] = ()
        notes = "The source stays online; DDL waits while the clone runs."
    else:
        if shutil.which(p.xtrabackup_command) is None:
            raise ParameterError("xtrabackup_command", f"{p.xtrabackup_command!r} is not found on this machine",
                                 hint="install Percona XtraBackup of the source's major version, or give its path")
        option_file = Path(p.backup_dir) / f".{name}.xtrabackup.cnf"
        command = _xtrabackup_command(p, option_file, target)
        steps.append(Step(f"this machine ({where})", "Percona XtraBackup", " ".join(command)
                          + f"   # {option_file}: 0600, user={p.source_admin_user} password={MASK}, deleted after",
                          reversible=True, undo=f"rm -r {target}"))
        notes = "The source stays online; XtraBackup takes a backup lock for the non-InnoDB files at the end."
    return BackupStep(Plan("backup", "back up the source", tuple(steps), notes), name, command, rb)


def _check_space(source: Server, backup_dir: str) -> None:
    need = int(source.scalar("SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) FROM information_schema.TABLES")
               or 0)
    folder = Path(backup_dir)
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < need * 1.2:
        problem = f"{backup_dir}: {free / 2**30:.1f} GiB free, the source holds {need / 2**30:.1f} GiB"
        raise CheckFailed("backup space", [problem], hint="give backup_dir a larger disk")


def latest_backup(rb: Session) -> Backup | None:
    """The newest completed backup; NotApplied if there is none and no cluster was restored yet."""
    found = backups(rb.params.backup_dir)
    if found:
        return found[-1]
    if describe_cluster(rb.aws("rds"), rb.params.aurora_cluster_id) is None:
        raise NotApplied(f"a completed backup in {rb.params.backup_dir}", "backup")
    print(f"No backup record in {rb.params.backup_dir}; the cluster exists already.")
    return None


def backup_frame(backup: Backup | None) -> pd.DataFrame:
    """:meth:`Backup.to_frame`, or one row saying there is no record."""
    import pandas as pd
    return backup.to_frame() if backup else pd.DataFrame([("backup", "(no record: the cluster existed)")],
                                                         columns=["item", "value"])


# --- step: upload ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class UploadStep:
    """``rb.gate.apply(step.plan, step.apply)``: the backup's files to S3, a progress bar over bytes."""

    plan: Plan
    bucket: str = ""
    files: tuple[tuple[str, str, int], ...] = ()     # (local path, key, bytes) still to upload
    create_bucket: bool = False
    rb: Any = field(default=None, repr=False, compare=False)

    def apply(self) -> str:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError
        from tqdm import tqdm
        s3, region = self.rb.aws("s3"), self.rb.params.aws_region
        if self.create_bucket:
            extra = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            aws_call(s3, "create_bucket", Bucket=self.bucket, **extra)
        total = sum(size for _, _, size in self.files)
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stdout, mininterval=1,
                  desc=f"upload to s3://{self.bucket}") as bar:
            for local, key, _ in self.files:
                try:
                    s3.upload_file(local, self.bucket, key, Callback=bar.update)
                except (S3UploadFailedError, ClientError, BotoCoreError) as e:
                    cause = e.__context__ if isinstance(e, S3UploadFailedError) and e.__context__ else e
                    raise aws_error(cause, "PutObject") from e
        return f"uploaded {len(self.files)} files, {total / 2**20:,.1f} MiB"


def plan_upload(rb: Session, backup: Backup | None) -> UploadStep:
    """Empty when the cluster exists or every file is already in S3 with its size."""
    p = rb.params
    title = f"upload the backup to s3://{p.s3_bucket}/{p.s3_prefix}"
    if backup is None or describe_cluster(rb.aws("rds"), p.aurora_cluster_id) is not None:
        return UploadStep(Plan("backup", title))
    s3, prefix = rb.aws("s3"), backup.s3_prefix(p)
    exists = bucket_exists(s3, p.s3_bucket)
    if not exists and not p.aws_endpoint_url:
        raise AwsError("HeadBucket", f"bucket {p.s3_bucket} does not exist (or is not visible to this account)",
                       hint="create it in aws_region (encrypted, no public access) or fix s3_bucket; the runbook "
                            "creates buckets only in the lab")
    there = s3_objects(s3, p.s3_bucket, prefix) if exists else {}
    root = Path(backup.directory)
    todo = tuple((str(f), prefix + f.relative_to(root).as_posix(), f.stat().st_size)
                 for f in sorted(root.rglob("*")) if f.is_file()
                 and there.get(prefix + f.relative_to(root).as_posix()) != f.stat().st_size)
    steps = [] if exists else [Step(f"AWS S3 ({p.aws_endpoint_url})", "CreateBucket (lab only)", p.s3_bucket,
                                    reversible=True, undo=f"delete bucket {p.s3_bucket}")]
    if todo:
        size = sum(t[2] for t in todo)
        steps.append(Step(f"AWS S3 {p.aws_region}", "upload (PutObject / multipart)",
                          f"{len(todo)} files, {size / 2**20:,.1f} MiB from {root} to s3://{p.s3_bucket}/{prefix}",
                          reversible=True, undo=f"delete the objects under s3://{p.s3_bucket}/{prefix}"))
    return UploadStep(Plan("backup", title, tuple(steps)), p.s3_bucket, todo, not exists, rb)
