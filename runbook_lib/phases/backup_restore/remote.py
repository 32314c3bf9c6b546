"""Phase 4's backup where XtraBackup really runs, chosen by ``backup_method`` (:func:`plan`):

* ``xtrabackup`` (this machine is the source's host) and ``clone`` (the lab):
  :func:`runbook_lib.phases.backup_restore.backup.plan_backup`;
* ``xtrabackup_ssh`` (:func:`plan_stream`, step ``backup``): XtraBackup on the source's host over
  SSH (:mod:`~runbook_lib.phases.backup_restore.xtrabackup`), its stream straight into S3 multipart
  uploads with a progress bar (:mod:`~runbook_lib.phases.backup_restore.stream`).  With
  ``backup_spool_dir`` the stream is also kept on the host, so an interrupted upload continues
  where its parts end; without it an interrupted upload cannot be continued (a new stream is
  another backup) and the next plan discards it, as a step to approve;
* ``s3`` (:func:`plan_s3`): a backup the DBA already made and uploaded to
  ``s3://s3_bucket/s3_prefix<backup_s3_name>/``: checked (:mod:`~runbook_lib.phases.backup_restore.s3_backup`)
  before anything is restored; nothing to apply.

Either way the backup's GTID position is recorded in a manifest in ``backup_dir`` like the local
methods' (its folder stays empty: the data is in S3), so the upload, restore and checks that follow
are the same.  The GTID position of a stream goes to S3 too, next to (not inside) the restore's
prefix: ``s3_prefix<name>.runbook/xtrabackup_binlog_info``.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook_lib.aws.calls import aws_call
from runbook_lib.aws.clusters import describe_cluster
from runbook_lib.core.approval import Plan, Step
from runbook_lib.core.errors import NotApplied, RunbookError
from runbook_lib.core.redact import MASK
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.phases.backup_restore import stream as s3stream
from runbook_lib.phases.backup_restore import xtrabackup as xb
from runbook_lib.phases.backup_restore.backup import (
    Backup,
    app_tables,
    backup_usable,
    backups,
    count_rows,
    option_file_text,
    plan_backup,
)
from runbook_lib.phases.backup_restore.s3_backup import check_s3_backup, sidecar_key

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from runbook_lib.context.params import RunbookParameters
    from runbook_lib.context.session import Session

STEM = "backup"
MARKER = ".stream-in-progress.json"
TLS = {"disabled": ("--ssl-mode=DISABLED",), "required": ("--ssl-mode=REQUIRED",)}


def _now() -> str:
    from datetime import datetime, timezone
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def transport(p: RunbookParameters) -> tuple[str, ...]:
    """ssh to the source's host, from the parameters (the key is a path or the agent, never a value)."""
    return xb.ssh_argv(p.backup_ssh_host or p.source_host, p.backup_ssh_port, p.backup_ssh_user, p.backup_ssh_key,
                       p.backup_ssh_known_hosts)


def stream_spec(p: RunbookParameters, mysql_version: tuple[int, ...]) -> xb.Stream:
    return xb.Stream(xb.series_for(mysql_version, p.xtrabackup_version), p.backup_stream_format,
                     p.xtrabackup_command, "127.0.0.1", p.source_port, TLS.get(p.source_tls, ()),
                     p.xtrabackup_parallel)


def workdir(p: RunbookParameters, name: str) -> str:
    return f"{p.backup_spool_dir.rstrip('/')}/{name}" if p.backup_spool_dir else f"/tmp/runbook-backup-{name}"


@dataclass(frozen=True)
class StreamStep:
    """``rb.gate.apply(step.plan, step.apply)``: the backup streamed from the source's host into S3."""

    plan: Plan
    name: str = ""
    spec: xb.Stream | None = None
    via: tuple[str, ...] = ()
    resume: s3stream.Pending | None = None      # continue these parts (spooled stream)
    discard: s3stream.Pending | None = None     # abort/delete these first (a stream that cannot continue)
    rb: Any = field(default=None, repr=False, compare=False)

    def _ssh(self, script: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*self.via, xb.remote(script)], capture_output=True, check=False, **kw)

    def apply(self) -> pd.DataFrame:
        rb, p = self.rb, self.rb.params
        s3, prefix, work = rb.aws("s3"), f"{p.s3_prefix}{self.name}/", workdir(p, self.name)
        marker = Path(p.backup_dir) / MARKER
        Path(p.backup_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.discard:
            s3stream.discard(s3, p.s3_bucket, self.discard)
        marker.write_text(json.dumps({"name": self.name, "workdir": work, "spooled": bool(p.backup_spool_dir)}))
        offset = self.resume.bytes_done if self.resume else 0
        if not self.resume:
            secret = option_file_text(p.source_admin_user, rb.secret("source_admin_password")).encode()
            script = (xb.start_script if p.backup_spool_dir else xb.pipe_script)(self.spec, work, len(secret))
        if p.backup_spool_dir:
            if not self.resume:
                started = self._ssh(script, input=secret, timeout=120)
                if started.returncode != 0:
                    raise _failed("could not start xtrabackup", started)
            proc = subprocess.Popen([*self.via, xb.remote(xb.follow_script(work, offset))], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        else:
            proc = subprocess.Popen([*self.via, xb.remote(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.PIPE)
            proc.stdin.write(secret)
            proc.stdin.close()
        try:
            with s3stream.progress_bar(None, offset, f"stream to s3://{p.s3_bucket}/{prefix}") as bar:
                pieces = s3stream.upload_stream(s3, p.s3_bucket, prefix, STEM, self.spec.extension, proc.stdout,
                                                part_bytes=p.backup_part_mib * 2**20, resume=self.resume,
                                                parts_per_piece=s3stream.parts_per_piece(p.backup_part_mib * 2**20),
                                                progress=bar.update)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        status = xb.parse_status(self._ssh(xb.status_script(work), timeout=120).stdout.decode(errors="replace"))
        if not status.ok:
            marker.write_text(json.dumps({"name": self.name, "workdir": work, "spooled": False}))   # discard next
            last = (status.log_tail.strip().splitlines() or ["(no log)"])[-1]
            raise RunbookError(f"xtrabackup on the source's host did not complete OK (exit code {status.rc}): {last}",
                               hint=f"read {work}/xtrabackup.log there; the S3 objects under s3://{p.s3_bucket}/"
                                    f"{prefix} are incomplete: run this step again (it discards them first)")
        binlog_file, position, gtid = xb.parse_xtrabackup_info(status.info)
        aws_call(s3, "put_object", Bucket=p.s3_bucket, Key=sidecar_key(p, self.name),
                 Body=xb.binlog_info_text(binlog_file, position, gtid).encode(), ServerSideEncryption="AES256")
        self._ssh(xb.cleanup_script(work), timeout=120)        # the log, xtrabackup_info, the spool
        marker.unlink(missing_ok=True)
        return _record(rb, self.name, "xtrabackup_ssh", gtid, pieces).to_frame()


def _failed(what: str, done: subprocess.CompletedProcess) -> RunbookError:
    err = done.stderr.decode(errors="replace").strip().splitlines()
    return RunbookError(f"{what} on the source's host (exit code {done.returncode}): {err[-1] if err else ''}",
                        hint="check backup_ssh_host/port/user/key/known_hosts: `ssh` to the host must work without "
                             "a prompt, and the host key must be known")


def _record(rb: Session, name: str, method: str, gtid: str, pieces) -> Backup:
    """The manifest of a backup that lives in S3 (its local folder stays empty)."""
    p, source = rb.params, rb.source()
    folder = Path(p.backup_dir) / name
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    executed = GtidSet(source.variables("gtid_executed")["gtid_executed"] or "")
    counts = count_rows(source, app_tables(source, p.app_schemas))
    backup = Backup(name, str(folder), method, _now(), str(GtidSet(gtid)), True, source.identity.server_uuid,
                    source.identity.version_text.split("-")[0], len(pieces), sum(size for _, size in pieces),
                    counts, executed == GtidSet(gtid), f"s3://{p.s3_bucket}/{p.s3_prefix}{name}/")
    backup.save(p.backup_dir)
    return backup


def plan(rb: Session) -> Any:
    """The backup step of ``backup_method``; every method plans nothing once the cluster exists."""
    p = rb.params
    if p.backup_method in ("xtrabackup", "clone"):
        return plan_backup(rb)
    if describe_cluster(rb.aws("rds"), p.aurora_cluster_id) is not None:
        print(f"Cluster {p.aurora_cluster_id} exists: no backup is needed.")
        return StreamStep(Plan("backup", "back up the source"), rb=rb)
    source = rb.source()
    mode = source.variables("gtid_mode")["gtid_mode"]
    if mode != "ON":
        raise NotApplied(f"gtid_mode=ON on the source (it is {mode})", "source_binlog")
    if p.backup_method == "s3":
        found = check_s3_backup(rb, source)
        if not any(b.name == p.backup_s3_name and b.method == "s3" and b.gtid_set == GtidSet(found.gtid)
                   for b in backups(p.backup_dir)):      # recorded once (the row counts are read then)
            _record(rb, p.backup_s3_name, "s3", found.gtid, found.objects)
        return StreamStep(Plan("backup", f"check the backup already in s3://{p.s3_bucket}/{p.s3_prefix}"
                                         f"{p.backup_s3_name}/"), rb=rb)
    return plan_stream(rb)


def plan_stream(rb: Session, via: tuple[str, ...] = (), spec: xb.Stream | None = None) -> StreamStep:
    """Reuse a usable backup; continue an interrupted spooled stream; or stream a new backup.
    ``via`` and ``spec`` default to the parameters' (ssh, the series for the source's version)."""
    p, source = rb.params, rb.source()
    v = source.variables("gtid_executed", "gtid_purged")
    executed, purged = GtidSet(v["gtid_executed"] or ""), GtidSet(v["gtid_purged"] or "")
    found = [b for b in backups(p.backup_dir) if b.method == "xtrabackup_ssh"]
    if found and not backup_usable(found[-1], source.identity.server_uuid, executed, purged):
        print(f"Backup {found[-1].name} (GTID {found[-1].gtid or 'empty'}) in S3 can still seed replication: reused.")
        return StreamStep(Plan("backup", "back up the source"), rb=rb)
    spec, via = spec or stream_spec(p, source.identity.version), via or transport(p)
    host = f"{p.backup_ssh_user + '@' if p.backup_ssh_user else ''}{p.backup_ssh_host or p.source_host}"
    probe = subprocess.run([*via, xb.remote(f"command -v {p.xtrabackup_command} >/dev/null && "
                                            f"{p.xtrabackup_command} --version 2>&1 | tail -n 1")],
                           capture_output=True, check=False, stdin=subprocess.DEVNULL, timeout=60)
    if probe.returncode != 0:
        raise _failed(f"ssh to the source's host, or {p.xtrabackup_command!r} there,", probe)
    print(f"On {host}: {probe.stdout.decode(errors='replace').strip()}")
    marker = Path(p.backup_dir) / MARKER
    s3, steps, resume, discard = rb.aws("s3"), [], None, None
    info = json.loads(marker.read_text()) if marker.is_file() else {}
    name = info.get("name") or _now()
    prefix = f"{p.s3_prefix}{name}/"
    state = s3stream.pending(s3, p.s3_bucket, prefix, STEM, spec.extension) if info else None
    if state is not None and info.get("spooled"):
        resume = state
        steps.append(Step(f"source host {host} (ssh)", "continue the interrupted upload",
                          f"{state.describe()}; the spooled stream is read again from byte {state.bytes_done:,}",
                          reversible=True, undo=f"delete s3://{p.s3_bucket}/{prefix}"))
    else:
        if state is not None and not state.empty:
            discard = state
            steps.append(Step(f"AWS S3 {p.aws_region}", "discard the interrupted upload",
                              f"{state.describe()} - without backup_spool_dir a stream cannot continue: a new "
                              "stream is another backup", reversible=False))
        name = name if discard else _now()
        prefix = f"{p.s3_prefix}{name}/"
        work = workdir(p, name)
        argv = " ".join(xb.xtrabackup_argv(spec, work)) + (" | gzip -c" if spec.fmt.endswith(".gz") else "")
        steps.append(Step(f"source host {host} (ssh, port {p.backup_ssh_port})", f"Percona XtraBackup {spec.series}",
                          argv + f"   # {work}/client.cnf: 0600, user={p.source_admin_user} password={MASK}, "
                          "sent on ssh's stdin, deleted after" + (f"; stream kept in {work}/stream"
                                                                   if p.backup_spool_dir else ""),
                          reversible=True, undo=f"rm -r {work}"))
    steps.append(Step(f"AWS S3 {p.aws_region}", "multipart upload of the stream",
                      f"s3://{p.s3_bucket}/{prefix}{STEM}{spec.extension}00, 01... (parts of {p.backup_part_mib} MiB, "
                      f"SSE-S3); the GTID position to s3://{p.s3_bucket}/{sidecar_key(p, name)}",
                      reversible=True, undo=f"delete the objects under s3://{p.s3_bucket}/{prefix}"))
    notes = ("The source stays online; XtraBackup takes a backup lock for the non-InnoDB files at the end. "
             + ("An interrupted upload continues from the spool on the next run." if p.backup_spool_dir else
                "No backup_spool_dir: an interrupted upload cannot continue; the next run discards it."))
    return StreamStep(Plan("backup", "back up the source on its host, streamed to S3", tuple(steps), notes), name,
                      spec, via, resume, discard, rb)
