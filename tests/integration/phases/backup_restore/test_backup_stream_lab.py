"""Phase 4's backup on the source's host over SSH, streamed into the lab's S3 (moto), and a backup
already in S3 checked: against a lab of its own (``<RUNBOOK_TEST_LAB>-stream``, ports
$RUNBOOK_TEST_PORT_BASE+32 .. +34) and Debian's sshd on loopback (port +35, a host key and a client
key made for the test; installed with apt-get when missing, else the SSH tests skip, saying why).

On the far side a script stands in for xtrabackup (the lab has no XtraBackup; its MySQL is 9.7): it
checks its 0600 option file, streams a tar of 12 MiB and leaves xtrabackup_info and a log ending
"completed OK!" as XtraBackup does.  The S3 side is real moto: multipart uploads, their parts, the
pieces.  An interruption is S3 refusing a part (a fault injected into the session's S3 client)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError

from runbook_lib.context import session
from runbook_lib.core.errors import AwsError, CheckFailed
from runbook_lib.lab import inspect
from runbook_lib.phases.backup_restore import remote
from runbook_lib.phases.backup_restore import stream as s3stream
from runbook_lib.phases.backup_restore import xtrabackup as xb
from runbook_lib.phases.backup_restore.backup import backups, latest_backup, plan_upload
from runbook_lib.phases.backup_restore.s3_backup import check_s3_backup
from tests.support import aws_client, own_lab, params_variant, port_base, query, wait_for

pytestmark = pytest.mark.lab

MIB = 2**20


def fake_xtrabackup(gtid: str) -> str:
    return f"""#!/bin/bash
# stands in for xtrabackup on the source's host: a tar stream, xtrabackup_info, a log ending 'completed OK!'
for a in "$@"; do case $a in --defaults-extra-file=*) cnf=${{a#*=}};; --extra-lsndir=*) lsn=${{a#*=}};;
  --target-dir=*) tmp=${{a#*=}};; --version) echo "xtrabackup version 8.4.0-2 (stand-in)" >&2; exit 0;; esac; done
[ "$(stat -c %a "$cnf")" = 600 ] && grep -q '^user="dba"$' "$cnf" || {{ echo "bad option file" >&2; exit 3; }}
mkdir -p "$tmp/data" && head -c {12 * MIB} /dev/urandom > "$tmp/data/ibdata1"
tar -C "$tmp/data" -cf - ibdata1
printf "binlog_pos = filename 'binlog.000003', position '157', GTID of the last change '{gtid}'\\n" > "$lsn/xtrabackup_info"
echo "$(date) completed OK!" >&2
"""


@pytest.fixture(scope="module")
def slab(tmp_path_factory):
    """(state, servers, params_file, folder) of the module's own lab."""
    with own_lab("stream", persona_rows=200) as (state, servers):
        for step in ("enforce_gtid_consistency = ON", "gtid_mode = OFF_PERMISSIVE", "gtid_mode = ON_PERMISSIVE",
                     "gtid_mode = ON"):       # what phase 02 does, so the backups have a GTID position
            query(servers["onprem"], f"SET GLOBAL {step}")
        query(servers["onprem"], "CREATE DATABASE stream_gtids")
        folder = tmp_path_factory.mktemp("stream")
        yield state, servers, inspect.write_params(state, folder / "lab.yaml"), folder


@pytest.fixture(scope="module")
def sshd(slab):
    """Debian's sshd on 127.0.0.1:<stream base + 3>; (port, user, key, known_hosts)."""
    if not Path("/usr/sbin/sshd").exists():
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.skip("no /usr/sbin/sshd and no root to `apt-get install -y openssh-server`")
        done = subprocess.run(["apt-get", "install", "-y", "openssh-server"], capture_output=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"apt-get install openssh-server failed: {done.stderr.decode()[-200:]}")
    folder, port = slab[3] / "sshd", port_base("stream") + 3
    folder.mkdir(mode=0o700)
    for key in ("host_key", "id_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / key)], check=True)
    shutil.copy(folder / "id_ed25519.pub", folder / "authorized_keys")
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder}/host_key\nPidFile {folder}/sshd.pid\n"
        f"AuthorizedKeysFile {folder}/authorized_keys\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nPermitRootLogin prohibit-password\nStrictModes no\n")
    Path("/run/sshd").mkdir(exist_ok=True)                   # sshd's privilege separation directory
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(folder / "sshd_config")],
                            stderr=subprocess.PIPE)
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} " + (folder / "host_key.pub").read_text())
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    argv = xb.ssh_argv("127.0.0.1", port, user, str(folder / "id_ed25519"), str(folder / "known_hosts"))
    wait_for("sshd to accept the test key", lambda: subprocess.run([*argv, "true"], capture_output=True,
                                                                     timeout=10).returncode == 0, timeout=15)
    yield port, user, str(folder / "id_ed25519"), str(folder / "known_hosts")
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def fake(slab):
    """(stand-in xtrabackup, the GTID position it reports: the source's gtid_executed)."""
    path = slab[3] / "bin" / "xtrabackup"
    path.parent.mkdir()
    gtid = query(slab[1]["onprem"], "SELECT @@gtid_executed g")[0]["g"]
    path.write_text(fake_xtrabackup(gtid))
    path.chmod(0o755)
    return path, gtid


def open_rb(slab, **changes):
    return session.open_session(str(params_variant(slab[2], **changes)), ["backup"])


# --- S3 multipart: pieces, an interrupted upload listed with its parts, continued --------------------

def test_a_stream_goes_to_s3_in_pieces_and_an_interrupted_upload_continues(slab):
    s3 = aws_client(slab[0].endpoint_url, "s3")
    s3.create_bucket(Bucket="stream-test")
    data = os.urandom(23 * MIB)
    prefix = "backup/T1/"

    class Cut:            # the stream's reader; the upload stops when S3 refuses the 3rd part
        def __init__(self, raw):
            self.raw, self.sent = raw, 0

        def read(self, n):
            chunk = self.raw[self.sent:self.sent + n]
            self.sent += len(chunk)
            return chunk

    reader, calls = Cut(data), {"n": 0}
    real_upload_part = s3.upload_part

    def flaky(**kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise EndpointConnectionError(endpoint_url=slab[0].endpoint_url)
        return real_upload_part(**kw)

    s3.upload_part = flaky
    with pytest.raises(AwsError):
        s3stream.upload_stream(s3, "stream-test", prefix, "backup", ".xbstream", reader, part_bytes=5 * MIB,
                               parts_per_piece=3)
    s3.upload_part = real_upload_part
    state = s3stream.pending(s3, "stream-test", prefix, "backup", ".xbstream")
    assert state.pieces == () and state.key == f"{prefix}backup.xbstream00"
    assert [(p.number, p.size) for p in state.parts] == [(1, 5 * MIB), (2, 5 * MIB)]    # kept and listed
    assert "open with 2 part(s) kept" in state.describe() and state.bytes_done == 10 * MIB
    pieces = s3stream.upload_stream(s3, "stream-test", prefix, "backup", ".xbstream", Cut(data[state.bytes_done:]),
                                    part_bytes=5 * MIB, parts_per_piece=3, resume=state)
    assert pieces == ((f"{prefix}backup.xbstream00", 15 * MIB), (f"{prefix}backup.xbstream01", 8 * MIB))
    got = b"".join(s3.get_object(Bucket="stream-test", Key=k)["Body"].read() for k, _ in pieces)
    assert got == data
    assert s3.head_object(Bucket="stream-test", Key=pieces[0][0])["ServerSideEncryption"] == "AES256"
    assert not s3.list_multipart_uploads(Bucket="stream-test", Prefix=prefix).get("Uploads")
    s3stream.discard(s3, "stream-test", s3stream.pending(s3, "stream-test", prefix, "backup", ".xbstream"))
    assert not s3.list_objects_v2(Bucket="stream-test", Prefix=prefix).get("Contents")


# --- the SSH path end to end -----------------------------------------------------------------------

def test_xtrabackup_over_ssh_streams_to_s3_and_an_interrupted_upload_continues_from_the_spool(slab, sshd, fake):
    port, user, key, known = sshd
    fake, gtid = fake
    spool = slab[3] / "spool"
    changes = dict(backup_method="xtrabackup_ssh", backup_ssh_host="127.0.0.1", backup_ssh_port=port,
                   backup_ssh_user=user, backup_ssh_key=key, backup_ssh_known_hosts=known,
                   backup_spool_dir=str(spool), xtrabackup_command=str(fake), backup_part_mib=5,
                   backup_dir=str(slab[3] / "backups"), s3_bucket="stream-ssh")
    aws_client(slab[0].endpoint_url, "s3").create_bucket(Bucket="stream-ssh")
    spec = xb.Stream("8.4", "xbstream", str(fake), "127.0.0.1", slab[0].onprem_port)   # the lab's MySQL is 9.7
    rb = open_rb(slab, **changes)
    step = remote.plan_stream(rb, spec=spec)
    steps = step.plan.to_frame().to_string()
    assert "Percona XtraBackup 8.4" in steps and f"--defaults-extra-file={spool}/{step.name}/client.cnf" in steps
    assert "password=********" in steps and "(ssh, port" in steps
    s3 = rb.aws("s3")
    real_upload_part, calls = s3.upload_part, {"n": 0}

    def flaky(**kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise EndpointConnectionError(endpoint_url=slab[0].endpoint_url)
        return real_upload_part(**kw)

    s3.upload_part = flaky
    with pytest.raises(AwsError):
        step.apply()
    s3.upload_part = real_upload_part
    again = remote.plan_stream(rb, spec=spec)
    assert again.name == step.name and again.resume is not None and len(again.resume.parts) == 1
    assert "continue the interrupted upload" in again.plan.to_frame().to_string()
    again.apply()
    prefix = f"backup/{step.name}/"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="stream-ssh", Prefix="backup/")["Contents"])
    assert keys == [f"backup/{step.name}.runbook/xtrabackup_binlog_info", f"{prefix}backup.xbstream00"]
    piece = keys[1]                    # the restore's prefix holds the stream only; the position lies beside it
    body = s3.get_object(Bucket="stream-ssh", Key=piece)["Body"].read()
    assert len(body) > 12 * MIB and body[:7] == b"ibdata1"          # the tar stream, whole
    record = backups(changes["backup_dir"])[-1]
    assert (record.method, record.gtid, record.name) == ("xtrabackup_ssh", gtid, step.name)
    assert record.counts_at_position and dict(record.counts)["app_crm.persona"] == 200
    assert not (spool / step.name).exists()                            # the spool is removed after the upload
    # the same backup, now "already in S3": checked, not taken again
    rb2 = open_rb(slab, **{**changes, "backup_method": "s3", "backup_s3_name": step.name,
                           "backup_dir": str(slab[3] / "backups-s3")})
    found = check_s3_backup(rb2, rb2.source())
    assert found.gtid == gtid and found.objects == ((piece, len(body)),)
    checked = remote.plan(rb2)                         # what notebook 04 does: checks, records, changes nothing
    assert checked.plan.is_empty
    taken = latest_backup(rb2)
    assert (taken.method, taken.name, taken.gtid, taken.bytes) == ("s3", step.name, gtid, len(body))
    assert taken.s3_prefix(rb2.params) == prefix and plan_upload(rb2, taken).plan.is_empty


def test_a_backup_in_s3_without_its_gtid_position_or_with_unknown_files_is_refused(slab):
    s3 = aws_client(slab[0].endpoint_url, "s3")
    s3.create_bucket(Bucket="stream-dba")
    s3.put_object(Bucket="stream-dba", Key="backup/full1/backup.xbstream00", Body=b"x" * 100)
    s3.put_object(Bucket="stream-dba", Key="backup/full1/notes.txt", Body=b"mine")
    rb = open_rb(slab, backup_method="s3", backup_s3_name="full1", s3_bucket="stream-dba")
    with pytest.raises(CheckFailed) as caught:
        check_s3_backup(rb, rb.source())
    assert "format Aurora reads" in str(caught.value) and "GTID position" in str(caught.value)


def test_without_a_spool_an_interrupted_upload_is_discarded_and_the_backup_streamed_again(slab, sshd, fake):
    port, user, key, known = sshd
    fake = fake[0]
    changes = dict(backup_method="xtrabackup_ssh", backup_ssh_host="127.0.0.1", backup_ssh_port=port,
                   backup_ssh_user=user, backup_ssh_key=key, backup_ssh_known_hosts=known, backup_spool_dir="",
                   xtrabackup_command=str(fake), backup_part_mib=5, backup_dir=str(slab[3] / "backups-pipe"),
                   s3_bucket="stream-pipe")
    aws_client(slab[0].endpoint_url, "s3").create_bucket(Bucket="stream-pipe")
    spec = xb.Stream("8.4", "xbstream", str(fake), "127.0.0.1", slab[0].onprem_port)
    rb = open_rb(slab, **changes)
    step = remote.plan_stream(rb, spec=spec)
    s3 = rb.aws("s3")
    real_upload_part = s3.upload_part

    def refuse_second(**kw):
        if kw["PartNumber"] == 2:
            raise EndpointConnectionError(endpoint_url=slab[0].endpoint_url)
        return real_upload_part(**kw)

    s3.upload_part = refuse_second
    with pytest.raises(AwsError):
        step.apply()
    s3.upload_part = real_upload_part
    again = remote.plan_stream(rb, spec=spec)
    shown = again.plan.to_frame().to_string()
    assert again.resume is None and again.discard is not None and len(again.discard.parts) == 1
    assert "discard the interrupted upload" in shown and "Percona XtraBackup 8.4" in shown
    again.apply()
    assert not s3.list_multipart_uploads(Bucket="stream-pipe").get("Uploads")       # the old parts are gone
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="stream-pipe")["Contents"])
    assert keys == [f"backup/{again.name}.runbook/xtrabackup_binlog_info", f"backup/{again.name}/backup.xbstream00"]
    assert not Path(f"/tmp/runbook-backup-{again.name}").exists()        # work folder (password file) removed
