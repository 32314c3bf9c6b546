"""`runbook run` on the lab: the archived run folder, a failing phase, a bad knob, the upload.

Runs before the phase tests (file order) and only executes 01_preflight, which changes nothing.
Checked on the files the run leaves and on the lab's S3, not only on the return value.
"""
from __future__ import annotations

import json

import pytest

from runbook_lib.core.errors import UnknownParameter
from runbook_lib.run import runner
from tests.support import params_variant

pytestmark = [pytest.mark.lab, pytest.mark.notebooks, pytest.mark.slow]

QUIET = {"progress": False, "say": lambda *_: None}


def secret_values(lab) -> list[str]:
    return [v for v in lab.state.passwords.values() if v]


def test_a_run_archives_the_executed_notebook_report_summary_and_redacted_parameters(lab, tmp_path):
    result = runner.run(lab.params_file, only="01", run_dir=tmp_path, **QUIET)
    assert result.ok and [(p.notebook, p.status) for p in result.phases] == [("01_preflight", "ok")]
    folder = result.run_dir
    assert folder.parent == tmp_path and folder.name.endswith("-lab")
    assert {p.name for p in folder.iterdir()} >= {"01_preflight.ipynb", "report.html", "summary.json",
                                                   "parameters.yaml"}
    executed = json.loads((folder / "01_preflight.ipynb").read_text())
    assert any(cell.get("outputs") for cell in executed["cells"])                  # it really ran
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["verdict"] == "ok" and summary["environment"] == "lab"
    assert [p["name"] for p in summary["phases"]] == ["01_preflight"] and summary["phases"][0]["seconds"] > 0
    report = (folder / "report.html").read_text()
    assert "01_preflight" in report and "<table" in report
    assert "source_admin_password: secretsmanager:" in (folder / "parameters.yaml").read_text()   # a reference
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert not [v for v in secret_values(lab) if v in text], f"a lab password is in {path.name}"


def test_a_run_says_one_line_per_phase_and_no_kernel_noise_reaches_the_user(lab, tmp_path, capfd):
    said: list[str] = []
    runner.run(lab.params_file, only="01", run_dir=tmp_path, progress=False, say=said.append)
    assert len(said) == 2 and said[0].startswith("run folder: ") and said[1].split()[:2] == ["01_preflight", "ok"]
    out, err = capfd.readouterr()
    assert "without encryption" not in out + err                # the kernel listens on IPC sockets, not TCP
    assert "WARNING" not in err and "Warning" not in err, err


def test_a_failing_phase_stops_the_run_names_the_cell_and_is_still_archived(lab, tmp_path):
    wrong = params_variant(lab.params_file, source_port=1)
    with pytest.raises(runner.PhaseFailed) as exc:
        runner.run(wrong, only="01-02", run_dir=tmp_path, **QUIET)
    phase = exc.value.phase
    assert phase.notebook == "01_preflight" and phase.failed_cell and "127.0.0.1:1" in phase.error
    assert "01_preflight.ipynb" in exc.value.hint
    (folder,) = tmp_path.iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["verdict"] == "failed"
    assert [(p["name"], p["status"]) for p in summary["phases"]] == [("01_preflight", "failed"),
                                                                      ("02_source_binlog", "skipped")]
    assert not (folder / "02_source_binlog.ipynb").exists() and (folder / "report.html").exists()


def test_an_unknown_notebook_knob_stops_the_run_before_anything_runs(lab, tmp_path):
    bad = params_variant(lab.params_file, notebook_parameters={"01_preflight": {"no_such_knob": 1}})
    with pytest.raises(UnknownParameter) as exc:
        runner.run(bad, only="01", run_dir=tmp_path, **QUIET)
    assert "notebook_parameters.01_preflight.no_such_knob" in str(exc.value)
    assert not any(tmp_path.iterdir())                                    # no run folder, nothing executed


def test_upload_copies_the_run_folder_to_s3(lab, tmp_path):
    s3 = lab.aws("s3")
    s3.create_bucket(Bucket="runbook-reports")
    params = params_variant(lab.params_file, report_s3_uri="s3://runbook-reports/runs/")
    result = runner.run(params, only="01", run_dir=tmp_path, **QUIET)
    uri = runner.upload(result, params)
    assert uri == f"s3://runbook-reports/runs/{result.run_dir.name}/"
    listed = s3.list_objects_v2(Bucket="runbook-reports", Prefix=f"runs/{result.run_dir.name}/")
    keys = {o["Key"].rsplit("/", 1)[-1] for o in listed.get("Contents", [])}
    assert keys == {p.name for p in result.run_dir.rglob("*") if p.is_file()}
