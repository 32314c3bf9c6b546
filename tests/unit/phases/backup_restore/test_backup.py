"""runbook_lib.phases.backup_restore.backup: the pure parts (XtraBackup's files, the manifest, when a backup can seed
replication), XtraBackup's handling of its password (a real subprocess standing in for the
xtrabackup binary), and the shape of the upload's AWS calls (botocore Stubber against the real
service models)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from botocore.stub import Stubber

from runbook_lib.context.params import load_parameters, parameters_from_mapping
from runbook_lib.context.session import Session
from runbook_lib.core.approval import Approvals
from runbook_lib.core.errors import AwsError, RunbookError
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.phases.backup_restore import backup as br
from tests.support import REPO

LAB = REPO / "parameters" / "lab.yaml"
U1, U2 = "3e11fa47-71ca-11e1-9e33-c80aa9429562", "752a5b87-e772-11f1-948d-02fc00000001"


def backup(**changes) -> br.Backup:
    values = {"name": "20261123T190000Z", "directory": "/nonexistent/20261123T190000Z", "method": "clone",
              "finished": "20261123T190001Z", "gtid": f"{U1}:1-100", "gtid_exact": True, "source_uuid": U1,
              "source_version": "8.0.36", "files": 17, "bytes": 120_000_000,
              "counts": (("app_crm.persona", 20000), ("app_crm.segment", 3))}
    return br.Backup(**{**values, **changes})


# --- XtraBackup's files -----------------------------------------------------------------------------

def test_binlog_info_with_a_gtid_set_over_several_lines():
    text = f"binlog.000012\t2345\t{U2}:1-5,\n{U1}:1-100\n"
    assert br.parse_binlog_info(text) == ("binlog.000012", 2345, f"{U1}:1-100,{U2}:1-5")


def test_binlog_info_without_gtids_and_garbage():
    assert br.parse_binlog_info("mysql-bin.000003\t157\n") == ("mysql-bin.000003", 157, "")
    with pytest.raises(RunbookError, match="xtrabackup_binlog_info"):
        br.parse_binlog_info("nothing here")


def test_completed_ok_is_the_last_line_only():
    ok = "... Writing xtrabackup_info\n2026-11-23T19:00:01 0 [Note] [MY-011825] [Xtrabackup] completed OK!\n\n"
    assert br.completed_ok(ok)
    assert not br.completed_ok(ok + "2026-11-23T19:00:02 0 [ERROR] something after\n")
    assert not br.completed_ok("")


def test_option_file_quotes_the_password():
    text = br.option_file_text("dba", 'p"a\\ss #1')
    assert text == '[client]\nuser="dba"\npassword="p\\"a\\\\ss #1"\n'


# --- which backup can seed replication --------------------------------------------------------------

def test_a_backup_is_usable_while_the_source_keeps_every_binlog_after_it():
    b = backup()
    assert br.backup_usable(b, U1, GtidSet(f"{U1}:1-150"), GtidSet(f"{U1}:1-50")) == ""
    assert "purged" in br.backup_usable(b, U1, GtidSet(f"{U1}:1-150"), GtidSet(f"{U1}:1-120"))
    assert "another server" in br.backup_usable(b, U2, GtidSet(f"{U1}:1-150"), GtidSet(""))
    assert "does not have" in br.backup_usable(b, U1, GtidSet(f"{U1}:1-90"), GtidSet(""))
    assert br.backup_usable(None, U1, GtidSet(""), GtidSet("")) == "no completed backup"


def test_manifest_round_trip_and_latest(tmp_path):
    older = backup(name="20261123T180000Z", directory=str(tmp_path / "20261123T180000Z"))
    newer = backup(directory=str(tmp_path / "20261123T190000Z"))
    gone = backup(name="20261123T200000Z", directory=str(tmp_path / "20261123T200000Z"))
    for b in (older, newer, gone):
        b.save(tmp_path)
    (tmp_path / older.name).mkdir()
    (tmp_path / newer.name).mkdir()
    assert br.backups(tmp_path) == [older, newer]          # a manifest without its folder is ignored
    assert br.backups(tmp_path / "missing") == []
    frame = newer.to_frame()
    assert list(frame.columns) == ["item", "value"] and f"{U1}:1-100" in set(frame["value"])


# --- XtraBackup with a stand-in executable: the password never on the command line -----------------

FAKE_XTRABACKUP = """#!/bin/sh
# records its arguments and the option file's mode and content, then writes what xtrabackup writes
for a in "$@"; do
  case "$a" in
    --defaults-extra-file=*) f="${a#--defaults-extra-file=}";;
    --target-dir=*) t="${a#--target-dir=}";;
  esac
done
echo "$@" > "$REC/argv"
stat -c %a "$f" > "$REC/mode"
cat "$f" > "$REC/options"
mkdir -p "$t" && printf 'binlog.000002\\t157\\t3e11fa47-71ca-11e1-9e33-c80aa9429562:1-7\\n' > "$t/xtrabackup_binlog_info"
echo "[Note] [MY-011825] [Xtrabackup] completed ${RESULT:-OK!}"
"""


@pytest.fixture
def xtrabackup_session(tmp_path, monkeypatch):
    tool = tmp_path / "xtrabackup"
    tool.write_text(FAKE_XTRABACKUP)
    tool.chmod(0o755)
    (tmp_path / "rec").mkdir()
    monkeypatch.setenv("REC", str(tmp_path / "rec"))
    monkeypatch.setenv("TEST_SOURCE_PW", "S3cret-source#pw")
    data = {**yaml.safe_load(LAB.read_text()), "backup_method": "xtrabackup", "xtrabackup_command": str(tool),
            "backup_dir": str(tmp_path / "backups"), "source_admin_password": "env:TEST_SOURCE_PW",
            "source_tls": "required"}
    (tmp_path / "backups").mkdir()
    return Session(parameters_from_mapping(data), Approvals()), tmp_path


def test_xtrabackup_gets_its_password_from_a_0600_file_that_is_removed(xtrabackup_session):
    rb, tmp = xtrabackup_session
    target = tmp / "backups" / "20261123T190000Z"
    command = br._xtrabackup_command(rb.params, tmp / "backups" / ".x.cnf", target)
    gtid, exact, log = br._run_xtrabackup(rb, command, target)
    assert (gtid, exact) == (f"{U1}:1-7", True) and Path(log).exists()
    argv = (tmp / "rec" / "argv").read_text()
    assert "S3cret" not in argv and "--backup" in argv and "--ssl-mode=REQUIRED" in argv
    assert f"--parallel={rb.params.xtrabackup_parallel}" in argv
    assert (tmp / "rec" / "mode").read_text().strip() == "600"
    assert 'password="S3cret-source#pw"' in (tmp / "rec" / "options").read_text()
    assert not (tmp / "backups" / ".x.cnf").exists()
    assert command[1].startswith("--defaults-extra-file=")    # must come first


def test_xtrabackup_without_completed_ok_fails_and_still_removes_the_file(xtrabackup_session, monkeypatch):
    rb, tmp = xtrabackup_session
    monkeypatch.setenv("RESULT", "with errors")
    target = tmp / "backups" / "x"
    with pytest.raises(RunbookError, match="did not complete OK") as e:
        br._run_xtrabackup(rb, br._xtrabackup_command(rb.params, tmp / "backups" / ".x.cnf", target), target)
    assert "xtrabackup.log" in e.value.hint and not (tmp / "backups" / ".x.cnf").exists()


# --- the upload (Stubber) -------------------------------------------------------------------------

@pytest.fixture
def rb():
    session = Session(load_parameters(LAB), Approvals())
    yield session


def test_a_missing_bucket_on_real_aws_is_an_error_with_a_hint(tmp_path):
    data = {**yaml.safe_load(LAB.read_text()), "aws_endpoint_url": "", "backup_dir": str(tmp_path)}
    rb = Session(parameters_from_mapping(data), Approvals())
    b = backup(directory=str(tmp_path / "b"))
    with Stubber(rb.aws("rds")) as r, Stubber(rb.aws("s3")) as s:
        r.add_client_error("describe_db_clusters", "DBClusterNotFoundFault", "not found", 404)
        s.add_client_error("head_bucket", "404", "Not Found", 404, expected_params={"Bucket": rb.params.s3_bucket})
        with pytest.raises(AwsError, match="does not exist") as e:
            br.plan_upload(rb, b)
    assert "creates buckets only in the lab" in e.value.hint


def backup_folder(tmp_path) -> br.Backup:
    folder = tmp_path / "20261123T190000Z"
    (folder / "app_crm").mkdir(parents=True)
    (folder / "mysql.ibd").write_bytes(b"x" * 100)
    (folder / "app_crm" / "persona.ibd").write_bytes(b"y" * 50)
    return backup(directory=str(folder), files=2, bytes=150)


def test_lab_upload_creates_the_bucket_then_puts_every_file(rb, tmp_path, capsys):
    from botocore.stub import ANY
    b, p = backup_folder(tmp_path), rb.params
    prefix = f"{p.s3_prefix}{b.name}/"
    with Stubber(rb.aws("rds")) as r, Stubber(rb.aws("s3")) as s:
        r.add_client_error("describe_db_clusters", "DBClusterNotFoundFault", "not found", 404)
        s.add_client_error("head_bucket", "404", "Not Found", 404, expected_params={"Bucket": p.s3_bucket})
        step = br.plan_upload(rb, b)
        assert list(step.plan.to_frame()["action"]) == ["CreateBucket (lab only)", "upload (PutObject / multipart)"]
        s.add_response("create_bucket", {}, {"Bucket": p.s3_bucket})
        for key in (f"{prefix}app_crm/persona.ibd", f"{prefix}mysql.ibd"):
            s.add_response("put_object", {}, {"Bucket": p.s3_bucket, "Key": key, "Body": ANY,
                                              "ChecksumAlgorithm": ANY})
        assert step.apply() == "uploaded 2 files, 0.0 MiB"
        s.assert_no_pending_responses()
    assert "upload to s3://" in capsys.readouterr().out            # the progress bar


def test_upload_skips_files_already_in_s3_with_their_size(rb, tmp_path):
    b, p = backup_folder(tmp_path), rb.params
    prefix = f"{p.s3_prefix}{b.name}/"
    with Stubber(rb.aws("rds")) as r, Stubber(rb.aws("s3")) as s:
        r.add_client_error("describe_db_clusters", "DBClusterNotFoundFault", "not found", 404)
        s.add_response("head_bucket", {}, {"Bucket": p.s3_bucket})
        s.add_response("list_objects_v2", {"Contents": [{"Key": f"{prefix}mysql.ibd", "Size": 100},
                                                        {"Key": f"{prefix}app_crm/persona.ibd", "Size": 7}],
                                           "IsTruncated": False},
                       {"Bucket": p.s3_bucket, "Prefix": prefix})
        step = br.plan_upload(rb, b)
    assert [key for _, key, _ in step.files] == [f"{prefix}app_crm/persona.ibd"] and not step.create_bucket
