"""A backup already in S3 (``backup_method: s3``), checked before anything is restored from it.

What AWS documents ("Physical migration from MySQL by using Percona XtraBackup and Amazon S3"):
Aurora reads every file under the restore's S3 prefix, by file name and extension (the files of a
backup directory, or a stream as Gzip .gz, tar .tar or Percona .xbstream, split pieces named in
order); an object is at most 5 TB; at most 1 million files; no partial backup (XtraBackup's
``xtrabackup_info`` says ``partial = Y``).  The runbook adds what replication needs: the backup's
GTID position, from ``xtrabackup_binlog_info`` (a directory backup has it under the prefix; for a
stream, which holds it inside, the DBA extracts it, ``xbstream -x xtrabackup_binlog_info``, and
uploads it next to the prefix as ``<name>.runbook/xtrabackup_binlog_info``, where the runbook's
own stream puts it), and that the source still has every binary log written after it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runbook_lib.aws.calls import aws_call
from runbook_lib.aws.s3 import bucket_exists, s3_objects
from runbook_lib.core.display import CheckResult, raise_if_failed, show_checks
from runbook_lib.core.errors import AwsError, RunbookError
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.phases.backup_restore.backup import parse_binlog_info

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.context.params import RunbookParameters
    from runbook_lib.context.session import Session
    from runbook_lib.mysql.connection import Server

MAX_OBJECT = 5 * 10**12       # S3: 5 TB per object
MAX_FILES = 1_000_000         # Aurora: source files of one restore
STREAM_NAME = re.compile(r"\.(xbstream|tar|gz)(\d+)?$")      # backup.xbstream, backup.tar.gz00, ...
DIRECTORY_MARK = "xtrabackup_checkpoints"


def sidecar_key(p: RunbookParameters, name: str) -> str:
    """Where a stream's GTID position is kept: next to, not inside, the restore's prefix."""
    return f"{p.s3_prefix}{name}.runbook/xtrabackup_binlog_info"


@dataclass(frozen=True)
class S3Backup:
    """What the checks found."""

    checks: tuple[CheckResult, ...]
    gtid: str = ""
    objects: tuple[tuple[str, int], ...] = ()


def layout(keys: list[str], prefix: str) -> tuple[str, list[str]]:
    """('directory' | 'stream' | '', names Aurora would not know what to do with)."""
    names = [k[len(prefix):] for k in keys]
    if any(n.split("/")[-1] == DIRECTORY_MARK for n in names):
        return "directory", []
    odd = [n for n in names if not STREAM_NAME.search(n)]
    return ("stream" if names and not odd else ""), odd


def _text(s3, bucket: str, key: str) -> str:
    return aws_call(s3, "get_object", Bucket=bucket, Key=key)["Body"].read().decode(errors="replace")


def evaluate(objects: dict[str, int], prefix: str, binlog_info: str, xtrabackup_info: str,
             executed: GtidSet, purged: GtidSet) -> S3Backup:
    """The check rows for the objects under ``prefix`` (pure; the two files' text '' when absent)."""
    rows: list[CheckResult] = []
    total = sum(objects.values())
    rows.append(CheckResult("objects under the prefix", f"{len(objects):,} ({total / 2**30:,.2f} GiB)", "",
                            "pass" if objects else "fail", "" if objects else "nothing there: check s3_prefix "
                            "and backup_s3_name"))
    kind, odd = layout(sorted(objects), prefix)
    rows.append(CheckResult("format Aurora reads (files, .xbstream, .tar, .gz, split pieces)", kind or "unknown", "",
                            "pass" if kind else "fail",
                            "" if kind else f"names Aurora does not read: {', '.join(odd[:5])}; name files by their "
                                            "format (AWS: 'Aurora consumes your backup files based on the file name')"))
    big = [k for k, size in objects.items() if size > MAX_OBJECT]
    rows.append(CheckResult("every object at most 5 TB", f"largest {max(objects.values(), default=0) / 2**30:,.1f} GiB",
                            "", "fail" if big else "pass", "split the stream (split -d)" if big else ""))
    rows.append(CheckResult("at most 1 million files", f"{len(objects):,}", "",
                            "fail" if len(objects) > MAX_FILES else "pass", "use a stream (.xbstream / .tar.gz)"
                            if len(objects) > MAX_FILES else ""))
    partial = re.search(r"^partial\s*=\s*(\w)", xtrabackup_info, re.M)
    if partial:
        rows.append(CheckResult("full backup (no --tables/--databases)", f"partial = {partial.group(1)}", "",
                                "fail" if partial.group(1) == "Y" else "pass",
                                "Aurora does not restore partial backups" if partial.group(1) == "Y" else ""))
    gtid = ""
    if not binlog_info:
        rows.append(CheckResult("GTID position (xtrabackup_binlog_info)", "missing", "", "fail",
                                "upload the backup's xtrabackup_binlog_info (xbstream -x xtrabackup_binlog_info) "
                                "to <s3_prefix><name>.runbook/xtrabackup_binlog_info"))
    else:
        try:
            gtid = parse_binlog_info(binlog_info)[2]
        except RunbookError as e:
            rows.append(CheckResult("GTID position (xtrabackup_binlog_info)", "unreadable", "", "fail", e.message))
        else:
            backup = GtidSet(gtid)
            problem = ("the backup has no GTIDs (taken before gtid_mode=ON)" if not gtid
                       else "it holds transactions the source does not have" if not backup <= executed
                       else f"the source purged binary logs after it ({purged - backup})" if not purged <= backup
                       else "")
            rows.append(CheckResult("GTID position (xtrabackup_binlog_info)", gtid or "(empty)", "",
                                    "fail" if problem else "pass", problem and f"{problem}: take a new backup"))
    pieces = tuple(sorted(objects.items())) if kind == "stream" else tuple(objects.items())
    return S3Backup(tuple(rows), gtid, pieces)


def check_s3_backup(rb: Session, source: Server) -> S3Backup:
    """Read the backup under ``s3_prefix<backup_s3_name>/``, show the checks, CheckFailed if any fails."""
    p, s3 = rb.params, rb.aws("s3")
    prefix = f"{p.s3_prefix}{p.backup_s3_name}/"
    if not bucket_exists(s3, p.s3_bucket):
        raise AwsError("HeadBucket", f"bucket {p.s3_bucket} does not exist (or is not visible to this account)",
                       hint="fix s3_bucket: backup_method s3 restores a backup already uploaded there")
    objects = s3_objects(s3, p.s3_bucket, prefix)
    inside, beside = f"{prefix}xtrabackup_binlog_info", sidecar_key(p, p.backup_s3_name)
    binlog_key = inside if inside in objects else beside if s3_objects(s3, p.s3_bucket, beside) else ""
    info_key = f"{prefix}xtrabackup_info"
    v = source.variables("gtid_executed", "gtid_purged")
    found = evaluate(objects, prefix, _text(s3, p.s3_bucket, binlog_key) if binlog_key else "",
                     _text(s3, p.s3_bucket, info_key) if info_key in objects else "",
                     GtidSet(v["gtid_executed"] or ""), GtidSet(v["gtid_purged"] or ""))
    what = f"backup in s3://{p.s3_bucket}/{prefix}"
    show_checks(found.checks, what)
    raise_if_failed(found.checks, what)
    return found
