"""runbook_lib.phases.backup_restore.xtrabackup: XtraBackup's command lines per series (2.4 / 8.0 / 8.4), the
scripts that run them on the source's host (run here for real with bash, a stand-in script in place of
xtrabackup), what they leave (xtrabackup_info), and ssh's command line."""
from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from runbook_lib.core.errors import ParameterError
from runbook_lib.phases.backup_restore import xtrabackup as xb

U1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
# Percona XtraBackup's xtrabackup_info: binlog_pos as 8.0 writes it (the GTID set may span lines)
INFO = f"""uuid = 1841cc41-87d5-11e9-8fd6-c2cc477158e8
tool_name = xtrabackup
tool_version = 8.0.35-31
server_version = 8.0.36
binlog_pos = filename 'binlog.000012', position '2345', GTID of the last change '{U1}:1-100'
partial = N
"""


def test_the_series_follows_the_sources_major_version():
    assert [xb.series_for(v) for v in ((5, 7, 44), (8, 0, 36), (8, 4, 3))] == ["2.4", "8.0", "8.4"]
    assert xb.series_for((8, 0, 36), "8.0") == "8.0"
    with pytest.raises(ParameterError, match="XtraBackup 2.4 cannot back up MySQL 8.0"):
        xb.series_for((8, 0, 36), "2.4")
    with pytest.raises(ParameterError, match="no XtraBackup series backs up MySQL 9.7.4"):
        xb.series_for((9, 7, 4))


@pytest.mark.parametrize("series", ["2.4", "8.0", "8.4"])
def test_xbstream_command_line_per_series(series):
    s = xb.Stream(series, "xbstream", "/usr/bin/xtrabackup", "127.0.0.1", 3306, ("--ssl-mode=REQUIRED",), 8)
    assert xb.xtrabackup_argv(s, "/spool/T") == (
        "/usr/bin/xtrabackup", "--defaults-extra-file=/spool/T/client.cnf", "--host=127.0.0.1", "--port=3306",
        "--ssl-mode=REQUIRED", "--backup", "--stream=xbstream", "--target-dir=/spool/T/tmp",
        "--extra-lsndir=/spool/T/lsn", "--parallel=8")
    assert s.extension == ".xbstream"


def test_tar_gz_is_24_only_and_has_no_parallel_copy():
    s24 = xb.Stream("2.4", "tar.gz", parallel=8)
    argv = xb.xtrabackup_argv(s24, "/w")
    assert "--stream=tar" in argv and not any(a.startswith("--parallel") for a in argv)
    assert s24.extension == ".tar.gz"
    for series in ("8.0", "8.4"):
        with pytest.raises(ParameterError, match=f"XtraBackup {series} streams xbstream only"):
            xb.xtrabackup_argv(xb.Stream(series, "tar.gz"), "/w")


def test_no_partial_backup_option_and_no_password_on_the_command_line():
    for series in ("2.4", "8.0", "8.4"):
        for fmt in ("xbstream", "xbstream.gz") + (("tar.gz",) if series == "2.4" else ()):
            argv = xb.xtrabackup_argv(xb.Stream(series, fmt), "/w")
            assert not any(a.split("=")[0] in xb.PARTIAL_OPTIONS for a in argv)
            assert not any("password" in a for a in argv)
    assert xb.pipe_script(xb.Stream("8.0", "xbstream.gz"), "/w", 40).count("| gzip -c") == 1


def test_xtrabackup_info_gives_the_gtid_position_in_binlog_info_form():
    assert xb.parse_xtrabackup_info(INFO) == ("binlog.000012", 2345, f"{U1}:1-100")
    assert xb.binlog_info_text("binlog.000012", 2345, f"{U1}:1-100") == f"binlog.000012\t2345\t{U1}:1-100\n"
    with pytest.raises(Exception, match="no binlog_pos"):
        xb.parse_xtrabackup_info("tool_name = xtrabackup\n")


def test_ssh_never_prompts_and_always_checks_the_host_key():
    assert xb.ssh_argv("db1", 2222, "backup", "/home/dba/.ssh/id_ed25519", "/etc/runbook/known_hosts") == (
        "ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "ServerAliveInterval=30", "-p",
        "2222", "-i", "/home/dba/.ssh/id_ed25519", "-o", "IdentitiesOnly=yes", "-o",
        "UserKnownHostsFile=/etc/runbook/known_hosts", "backup@db1")
    assert xb.ssh_argv("db1", 22)[-1] == "db1"


# --- the scripts, run for real: bash here stands for the source's host, a script for xtrabackup ----

FAKE = """#!/bin/bash
# stands in for xtrabackup: checks its option file, streams bytes, leaves xtrabackup_info and its log
for a in "$@"; do case $a in --defaults-extra-file=*) cnf=${a#*=};; --extra-lsndir=*) lsn=${a#*=};; esac; done
[ "$(stat -c %a "$cnf")" = 600 ] && grep -q '^password="s3cr\\\\"et"$' "$cnf" || { echo "bad option file" >&2; exit 3; }
head -c 300000 /dev/zero | tr '\\0' x
sleep "${FAKE_SLEEP:-0}"
head -c 300000 /dev/zero | tr '\\0' y
printf "binlog_pos = filename 'binlog.000003', position '157', GTID of the last change '%s:1-7'\\n" "$GTID" > "$lsn/xtrabackup_info"
echo "xtrabackup: Transaction log of lsn (1) to (2) was copied." >&2
echo "$(date) completed OK!" >&2
"""


@pytest.fixture
def host(tmp_path):
    fake = tmp_path / "xtrabackup"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    secret = b'[client]\nuser="dba"\npassword="s3cr\\"et"\n'
    return tmp_path, xb.Stream("8.0", "xbstream", str(fake)), secret


def run(script: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", xb.remote(script)], capture_output=True, check=False, timeout=60,
                          env={**os.environ, "GTID": U1}, **kw)


def test_the_pipe_script_streams_and_leaves_status_and_no_option_file(host):
    tmp, spec, secret = host
    work = str(tmp / "work")
    done = run(xb.pipe_script(spec, work, len(secret)), input=secret)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"x" * 300000 + b"y" * 300000
    status = xb.parse_status(run(xb.status_script(work)).stdout.decode())
    assert status.ok and xb.parse_xtrabackup_info(status.info)[2] == f"{U1}:1-7"
    assert not (tmp / "work" / "client.cnf").exists()


def test_the_option_file_goes_when_the_stream_breaks(host, monkeypatch):
    tmp, spec, secret = host
    monkeypatch.setenv("FAKE_SLEEP", "1")
    proc = subprocess.Popen(["bash", "-c", xb.pipe_script(spec, str(tmp / "work"), len(secret))],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "GTID": U1})
    proc.stdin.write(secret)
    proc.stdin.close()
    assert proc.stdout.read(1000) == b"x" * 1000 and (tmp / "work" / "client.cnf").exists()
    proc.stdout.close()                        # ssh gone: the next write of the stream breaks the pipe
    proc.wait(20)
    assert not (tmp / "work" / "client.cnf").exists()


def test_a_failing_xtrabackup_is_not_ok(host):
    tmp, spec, _ = host
    work = str(tmp / "work")
    bad = b'[client]\nuser="dba"\npassword="wrong"\n'
    assert run(xb.pipe_script(spec, work, len(bad)), input=bad).returncode == 3
    status = xb.parse_status(run(xb.status_script(work)).stdout.decode())
    assert status.rc == 3 and not status.ok and "bad option file" in status.log_tail


def test_the_spooled_stream_runs_detached_and_is_followed_from_any_offset(host, monkeypatch):
    tmp, spec, secret = host
    work = str(tmp / "spool" / "T")
    monkeypatch.setenv("FAKE_SLEEP", "1")
    started = run(xb.start_script(spec, work, len(secret)), input=secret)
    assert started.returncode == 0 and started.stdout.strip().isdigit()
    follow = run(xb.follow_script(work, 299990))         # follows while xtrabackup still runs
    assert follow.stdout == b"x" * 10 + b"y" * 300000
    deadline = time.monotonic() + 10
    while not Path(work, "rc").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert xb.parse_status(run(xb.status_script(work)).stdout.decode()).ok
    assert run(xb.follow_script(work, 0)).stdout[:3] == b"xxx"      # after the end: the whole stream again
    run(xb.cleanup_script(work))
    assert not Path(work).exists()


def test_remote_quotes_the_whole_script_for_the_login_shell():
    script = xb.pipe_script(xb.Stream("8.4", "xbstream", "/opt/x b/xtrabackup"), "/sp ool/T", 10)
    assert shlex.split(xb.remote(script)) == ["bash", "-c", script]
    assert "'/opt/x b/xtrabackup' '--defaults-extra-file=/sp ool/T/client.cnf'" in script
    assert script.count("EXIT HUP INT TERM PIPE") == 1          # the option file goes however the script ends
