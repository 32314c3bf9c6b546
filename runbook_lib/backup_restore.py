"""Phase 4: a physical backup of the source, uploaded to S3, restored into a new Aurora cluster.

This module is the phase's face for notebook ``04_backup_restore`` and for later phases; the code
lives in :mod:`runbook_lib.backup`, :mod:`runbook_lib.restore` and :mod:`runbook_lib.aws`.

Three approvable steps, each planned from what the servers, the disk and AWS hold now, so a second
run plans nothing:

* :func:`plan_backup` (step ``backup``): Percona XtraBackup (its password only in a 0600 option
  file; ``completed OK!`` checked; the GTID position from ``xtrabackup_binlog_info``), or in the lab
  (``backup_method: clone``) MySQL's clone plugin, which also carries the GTID history.  A manifest
  ``<backup_dir>/<name>.runbook.json`` records the backup: its GTID position and the source's row
  counts per application table.  :func:`latest_backup` reads it back.
* :func:`plan_upload` (step ``backup``): the backup folder to ``s3://<s3_bucket>/<s3_prefix><name>/``
  with a progress bar over bytes; files already there with the same size are skipped.
* :func:`plan_restore` (step ``restore``): ``RestoreDBClusterFromS3`` with the phase-3 parameter
  group, a wait until the cluster is available, then the writer (and reader) instance.  An existing
  cluster is never restored over.

:func:`verify` and :func:`row_counts` then check the result on AWS and on the restored server: against
the backup's position while Aurora is still there, and once it has moved on (a run after phase 5),
that it still contains the position, with the row counts shown for information.
"""
from __future__ import annotations

from runbook_lib.aws import (FAILED_STATES, Cluster, aws_call, aws_error, aws_pages, bucket_exists,
                             describe_cluster, error_code, s3_objects, wait_until_available)
from runbook_lib.backup import (MANIFEST, SYSTEM_SCHEMAS, Backup, BackupStep, UploadStep, app_tables,
                                backup_frame, backup_usable, backups, completed_ok, count_rows, latest_backup,
                                option_file_text, parse_binlog_info, plan_backup, plan_upload)
from runbook_lib.restore import (RestoreStep, RowCounts, cluster_status, figures, gtid_check, later_transactions,
                                 plan_restore, restore_prerequisites, restore_request, row_counts, verify)

__all__ = [
    # the backup and its upload (runbook_lib.backup)
    "MANIFEST", "SYSTEM_SCHEMAS", "Backup", "BackupStep", "UploadStep", "app_tables", "backup_frame",
    "backup_usable", "backups", "completed_ok", "count_rows", "latest_backup", "option_file_text",
    "parse_binlog_info", "plan_backup", "plan_upload",
    # the restore and its checks (runbook_lib.restore)
    "RestoreStep", "RowCounts", "cluster_status", "figures", "gtid_check", "later_transactions", "plan_restore",
    "restore_prerequisites", "restore_request", "row_counts", "verify",
    # AWS helpers this module offered before the split (runbook_lib.aws)
    "FAILED_STATES", "Cluster", "aws_call", "aws_error", "aws_pages", "bucket_exists", "describe_cluster",
    "error_code", "s3_objects", "wait_until_available",
]
