"""Percona XtraBackup where it really runs: on the source's host, over SSH, its stream sent to S3.

XtraBackup copies the data directory, so it runs on the source's host.  These pure functions build
what runs there, per XtraBackup series (:func:`series_for`: 2.4 for MySQL 5.7, 8.0 for 8.0, 8.4 for
8.4), and read back what it leaves (:func:`parse_xtrabackup_info`).

* Percona XtraBackup 2.4, "Streaming and Compressing Backups": ``--stream=tar`` or ``xbstream``
  (``--parallel`` copies in parallel with xbstream only).  8.0 and 8.4, "Take a streaming backup":
  xbstream only (from 8.0.33-28 the value may be left out; it is always given here, which every
  series accepts).  All: ``--backup``, ``--target-dir`` (temporary files), ``--extra-lsndir`` (a
  copy of ``xtrabackup_info``/``xtrabackup_checkpoints`` outside the stream: the GTID position is
  read from its ``binlog_pos``), ``--defaults-extra-file`` (the password: never on a command line).
* AWS, "Physical migration from MySQL by using Percona XtraBackup and Amazon S3": Aurora takes the
  backup's files as they are, or streamed as Gzip (.gz), tar (.tar) or Percona xbstream
  (.xbstream); it reads the files by name, "in alphabetical order and also in natural number
  order" (its examples: ``split -d --bytes=500MB - backup.xbstream``); an S3 object is at most
  5 TB; at most 1 million files; no partial backup (``--tables``, ``--tables-exclude``,
  ``--tables-file``, ``--databases``, ``--databases-exclude``, ``--databases-file``).
  XtraBackup's own ``--compress`` (qpress, ZSTD) is not among those formats: compression here is
  gzip over the stream.

The scripts run with bash on the source's host.  The password reaches the host on ssh's stdin and
lands in a 0600 option file in the work folder, removed when xtrabackup ends.  With a spool folder
(:func:`start_script`) xtrabackup runs detached from the SSH session and writes its stream to a
file there that :func:`follow_script` sends from any byte offset: an interrupted upload continues
where S3's parts end.  Without one (:func:`pipe_script`) the stream goes straight into ssh.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from runbook_lib.core.errors import ParameterError, RunbookError

SERIES_FOR_MYSQL = {(5, 7): "2.4", (8, 0): "8.0", (8, 4): "8.4"}
EXTENSIONS = {"xbstream": ".xbstream", "xbstream.gz": ".xbstream.gz", "tar.gz": ".tar.gz"}
PARTIAL_OPTIONS = ("--tables", "--tables-exclude", "--tables-file", "--databases", "--databases-exclude",
                   "--databases-file")
_BINLOG_POS = re.compile(r"^binlog_pos\s*=\s*filename\s+'(?P<file>[^']*)',\s*position\s+'(?P<pos>\d+)'"
                         r"(?:,\s*GTID of the last change\s+'(?P<gtid>[^']*)')?", re.M)


def series_for(mysql_version: tuple[int, ...], wanted: str = "") -> str:
    """The XtraBackup series for a source of ``mysql_version`` ('' wanted: the matching one)."""
    series = SERIES_FOR_MYSQL.get(tuple(mysql_version[:2]))
    if series is None:
        raise ParameterError("xtrabackup_version", f"no XtraBackup series backs up MySQL "
                             f"{'.'.join(map(str, mysql_version[:3]))} for a restore from S3",
                             hint="Aurora restores backups of MySQL 5.7, 8.0 and 8.4 (same major version)")
    if wanted and wanted != series:
        raise ParameterError("xtrabackup_version", f"XtraBackup {wanted} cannot back up MySQL "
                             f"{'.'.join(map(str, mysql_version[:2]))}", hint=f"use XtraBackup {series}")
    return series


@dataclass(frozen=True)
class Stream:
    """What xtrabackup is asked for on the source's host."""

    series: str                 # 2.4 | 8.0 | 8.4
    fmt: str                    # xbstream | xbstream.gz | tar.gz
    command: str = "xtrabackup"
    host: str = "127.0.0.1"     # the MySQL server as seen from its own host
    port: int = 3306
    tls: tuple[str, ...] = ()
    parallel: int = 4

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.fmt]


def xtrabackup_argv(s: Stream, workdir: str) -> tuple[str, ...]:
    """xtrabackup's command line for series ``s.series``, its files under ``workdir`` on the host."""
    if s.fmt not in EXTENSIONS:
        raise ParameterError("backup_stream_format", f"{s.fmt!r} is not one of {', '.join(EXTENSIONS)}")
    tar = s.fmt == "tar.gz"
    if tar and s.series != "2.4":
        raise ParameterError("backup_stream_format", f"XtraBackup {s.series} streams xbstream only",
                             hint="use xbstream or xbstream.gz")
    argv = [s.command, f"--defaults-extra-file={workdir}/client.cnf", f"--host={s.host}", f"--port={s.port}",
            *s.tls, "--backup", f"--stream={'tar' if tar else 'xbstream'}", f"--target-dir={workdir}/tmp",
            f"--extra-lsndir={workdir}/lsn"]
    if not tar:
        argv.append(f"--parallel={s.parallel}")
    if any(a.split("=")[0] in PARTIAL_OPTIONS for a in argv):
        raise RunbookError("a partial backup is not restorable from S3")   # pragma: no cover - guard
    return tuple(argv)


def _pipeline(s: Stream, workdir: str) -> str:
    xb = " ".join(shlex.quote(a) for a in xtrabackup_argv(s, workdir))
    gzip = " | gzip -c" if s.fmt.endswith(".gz") else ""
    return f"{xb} 2>{shlex.quote(workdir + '/xtrabackup.log')}{gzip}"


def _prologue(workdir: str, secret_bytes: int) -> str:
    w = shlex.quote(workdir)
    return (f"set -o pipefail; umask 077; mkdir -p {w}/tmp {w}/lsn && rm -f {w}/rc {w}/stream && "
            f"head -c {int(secret_bytes)} > {w}/client.cnf || exit 97; ")


def remote(script: str) -> str:
    """The command string ssh hands to the remote login shell: bash, whatever that shell is."""
    return "bash -c " + shlex.quote(script)


def _forget_password(workdir: str) -> str:
    """The option file goes whenever the script ends, also when ssh hangs up or the stream breaks."""
    return f"trap {shlex.quote('rm -f ' + shlex.quote(workdir + '/client.cnf'))} EXIT HUP INT TERM PIPE; "


def pipe_script(s: Stream, workdir: str, secret_bytes: int) -> str:
    """xtrabackup's stream on stdout (not resumable); rc in ``workdir/rc``."""
    w = shlex.quote(workdir)
    return (_prologue(workdir, secret_bytes) + _forget_password(workdir)
            + f"{_pipeline(s, workdir)}; rc=$?; echo $rc > {w}/rc; exit $rc")


def start_script(s: Stream, workdir: str, secret_bytes: int) -> str:
    """xtrabackup detached from the SSH session, its stream into ``workdir/stream``; prints its pid."""
    w = shlex.quote(workdir)
    inner = (f"set -o pipefail; {_forget_password(workdir)}{_pipeline(s, workdir)} > {w}/stream; rc=$?; "
             f"echo $rc > {w}/rc")
    return (_prologue(workdir, secret_bytes) + f"setsid nohup bash -c {shlex.quote(inner)} </dev/null >/dev/null "
            f"2>&1 & echo $! > {w}/pid; cat {w}/pid")


def follow_script(workdir: str, offset: int) -> str:
    """The spooled stream from byte ``offset`` on, following it until xtrabackup has ended."""
    w = shlex.quote(workdir)
    # tail skips only what the file holds when it starts: wait until the spool has reached the offset
    return (f"while [ \"$(stat -c %s {w}/stream 2>/dev/null || echo -1)\" -lt {int(offset)} ] && [ ! -e {w}/rc ]; "
            f"do sleep 0.2; done; exec tail -c +{int(offset) + 1} -f --pid=$(cat {w}/pid) {w}/stream")


def status_script(workdir: str) -> str:
    """After the stream: xtrabackup's exit code, its log's last lines and its xtrabackup_info."""
    w = shlex.quote(workdir)
    return (f"echo \"rc=$(cat {w}/rc 2>/dev/null)\"; echo '--- log'; tail -n 5 {w}/xtrabackup.log 2>/dev/null; "
            f"echo '--- xtrabackup_info'; cat {w}/lsn/xtrabackup_info 2>/dev/null; true")


def cleanup_script(workdir: str) -> str:
    return f"rm -rf {shlex.quote(workdir)}"


@dataclass(frozen=True)
class Status:
    """What :func:`status_script` printed."""

    rc: int | None
    log_tail: str
    info: str

    @property
    def ok(self) -> bool:
        lines = [ln for ln in self.log_tail.splitlines() if ln.strip()]
        return self.rc == 0 and bool(lines) and lines[-1].rstrip().endswith("completed OK!")


def parse_status(text: str) -> Status:
    head, _, rest = text.partition("--- log\n")
    log, _, info = rest.partition("--- xtrabackup_info\n")
    m = re.search(r"rc=(\d+)", head)
    return Status(int(m.group(1)) if m else None, log, info)


def parse_xtrabackup_info(text: str) -> tuple[str, int, str]:
    """``binlog_pos`` of xtrabackup_info -> (binlog file, position, GTID set text; '' without GTIDs)."""
    m = _BINLOG_POS.search(text)
    if not m:
        raise RunbookError("xtrabackup_info has no binlog_pos line",
                           hint="the backup did not record its binary log position; take it again")
    return m["file"], int(m["pos"]), " ".join((m["gtid"] or "").split()).replace(" ", "")


def binlog_info_text(file: str, position: int, gtid: str) -> str:
    """The same position in ``xtrabackup_binlog_info``'s form (file<TAB>position<TAB>GTID set)."""
    return f"{file}\t{position}\t{gtid}\n"


def ssh_argv(host: str, port: int, user: str = "", key: str = "", known_hosts: str = "") -> tuple[str, ...]:
    """ssh to the source's host: no password prompt, the host's key always checked (a path, never a key)."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ServerAliveInterval=30",
            "-p", str(port)]
    if key:
        argv += ["-i", key, "-o", "IdentitiesOnly=yes"]
    if known_hosts:
        argv += ["-o", f"UserKnownHostsFile={known_hosts}"]
    return (*argv, f"{user}@{host}" if user else host)
