"""Notebook 03_parameter_group on the lab's AWS endpoint: nothing created without approval, the group
with the desired values (read back with boto3) and the comparison with the family's defaults with it,
nothing changed by a second run, and bad inputs stop the first cell that needs them."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from papermill.exceptions import PapermillExecutionError

from tests.notebooks.conftest import outputs_text
from tests.support import last_output

pytestmark = [pytest.mark.lab, pytest.mark.notebooks]

STEM = "03_parameter_group"


def group_state(lab, name: str) -> dict | None:
    """The group's family and its user-set values as the endpoint describes them; None if missing."""
    rds = lab.aws("rds")
    try:
        group = rds.describe_db_cluster_parameter_groups(DBClusterParameterGroupName=name)
    except rds.exceptions.DBParameterGroupNotFoundFault:
        return None
    user = rds.describe_db_cluster_parameters(DBClusterParameterGroupName=name, Source="user")["Parameters"]
    return {"family": group["DBClusterParameterGroups"][0]["DBParameterGroupFamily"],
            "values": {p["ParameterName"]: (p["ParameterValue"], p["ApplyMethod"]) for p in user}}


def failed_run(pipeline, params_file):
    with pytest.raises(PapermillExecutionError) as caught:
        pipeline.run(STEM, params_file)
    return caught.value, last_output(pipeline, STEM)


def test_without_approval_no_group_is_created(lab, pipeline):
    pipeline.through("02_source_binlog")
    name = pipeline.params["aurora_parameter_group"]
    assert group_state(lab, name) is None, "the lab must not have the group yet for this test"
    err, text = failed_run(pipeline, pipeline.params_file(approvals=[]))
    assert err.ename == "NotApplied" and "parameter_group.compare" in err.source
    assert f"cluster parameter group {name}" in err.evalue and "'parameter_group'" in err.evalue
    assert "SKIPPED: step 'parameter_group' not approved" in text
    assert "CreateDBClusterParameterGroup" in text and "gtid-mode = ON" in text     # the plan was shown
    assert group_state(lab, name) is None


def test_a_wrong_family_or_endpoint_stops_the_first_cell_that_asks_aws(lab, pipeline):
    pipeline.through("02_source_binlog")
    name = pipeline.params["aurora_parameter_group"]
    err, _ = failed_run(pipeline, pipeline.params_file(aurora_parameter_group_family="aurora-mysql9.9"))
    assert err.ename == "AwsError" and "parameter_group.inspect" in err.source
    assert "aurora-mysql9.9" in err.evalue
    err, _ = failed_run(pipeline, pipeline.params_file(aws_endpoint_url="http://127.0.0.1:9"))
    assert err.ename == "AwsError" and "parameter_group.inspect" in err.source
    assert "aws_endpoint_url" in err.evalue
    assert group_state(lab, name) is None


def test_with_approval_the_group_holds_the_desired_values(lab, pipeline):
    nb = pipeline.through(STEM)[STEM]
    text = outputs_text(nb)
    p = pipeline.params
    assert "APPLIED: step 'parameter_group'" in text
    state = group_state(lab, p["aurora_parameter_group"])
    assert state == {"family": p["aurora_parameter_group_family"], "values": {
        "binlog_format": ("ROW", "pending-reboot"), "gtid-mode": ("ON", "pending-reboot"),
        "enforce_gtid_consistency": ("ON", "pending-reboot"),
        "log_bin_trust_function_creators": ("1", "immediate"),
        "auto_increment_increment": (str(p["auto_increment_increment"]), "immediate"),
        "auto_increment_offset": (str(p["aurora_auto_increment_offset"]), "immediate")}}
    # the comparison with the family's defaults: parameter, default, this group, changed
    compare = outputs_text(SimpleNamespace(cells=nb.cells[-3:]))
    for header in ("parameter", "default", "this group", "changed"):
        assert f">{header}</th>" in compare
    for row in (("gtid-mode", "OFF_PERMISSIVE", "ON", "yes"), ("binlog_format", "OFF", "ROW", "yes")):
        assert "</td>".join(row) in _cells_text(compare)
    assert f"PASS: parameter group {p['aurora_parameter_group']}: all 6 checks passed" in text


def _cells_text(html: str) -> str:
    """The table's cell texts joined by '</td>' (tags and whitespace between cells dropped)."""
    import re
    cells = re.findall(r"<td[^>]*>(.*?)</td>", html, flags=re.DOTALL)
    return "</td>".join(c.strip() for c in cells)


def test_a_second_run_changes_nothing(lab, pipeline):
    pipeline.through(STEM)
    name = pipeline.params["aurora_parameter_group"]
    before = group_state(lab, name)
    text = outputs_text(pipeline.run(STEM))
    assert "nothing to do (step 'parameter_group')" in text
    assert "APPLIED" not in text and "SKIPPED" not in text
    assert f"PASS: parameter group {name}: all 6 checks passed" in text
    assert group_state(lab, name) == before
