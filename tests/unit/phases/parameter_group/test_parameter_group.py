"""runbook_lib.phases.parameter_group.steps: planning (desired vs described parameters), the comparison with
the family's defaults, and the shape of every AWS call (botocore Stubber against the real RDS
service model: a request that does not fit the model fails the test).  Error mapping: test_aws."""
from __future__ import annotations

import pytest
from botocore.stub import ANY, Stubber

from runbook_lib.context.params import load_parameters
from runbook_lib.context.session import open_session
from runbook_lib.core.errors import AwsError, NotApplied
from runbook_lib.phases.parameter_group import steps as pg
from tests.support import REPO

LAB = REPO / "parameters" / "lab.yaml"
GROUP, FAMILY = "runbook-bidir-aurora8", "aurora-mysql8.0"

# What the family's defaults look like for these parameters (values as AWS shows them for aurora-mysql8.0)
DEFAULTS = [
    {"ParameterName": "binlog_format", "ParameterValue": "OFF", "ApplyType": "static", "Source": "system",
     "IsModifiable": True, "DataType": "string"},
    {"ParameterName": "gtid-mode", "ParameterValue": "OFF_PERMISSIVE", "ApplyType": "static",
     "Source": "system", "IsModifiable": True},
    {"ParameterName": "enforce_gtid_consistency", "ParameterValue": "OFF", "ApplyType": "static",
     "Source": "system", "IsModifiable": True},
    {"ParameterName": "log_bin_trust_function_creators", "ApplyType": "dynamic", "Source": "engine-default",
     "IsModifiable": True},
    {"ParameterName": "auto_increment_increment", "ApplyType": "dynamic", "Source": "engine-default",
     "IsModifiable": True},
    {"ParameterName": "auto_increment_offset", "ApplyType": "dynamic", "Source": "engine-default",
     "IsModifiable": True},
    {"ParameterName": "server_audit_logging", "ParameterValue": "0", "ApplyType": "dynamic",
     "Source": "system", "IsModifiable": True},
]
DESIRED = {"binlog_format": "ROW", "gtid-mode": "ON", "enforce_gtid_consistency": "ON",
           "log_bin_trust_function_creators": "1", "auto_increment_increment": "2", "auto_increment_offset": "1"}


def described(values: dict[str, str]) -> list[dict]:
    """The group's parameters as DescribeDBClusterParameters lists them: defaults with values set."""
    out = []
    for d in DEFAULTS:
        item = dict(d)
        if d["ParameterName"] in values:
            item.update(ParameterValue=values[d["ParameterName"]], Source="user")
        out.append(item)
    return out


def state(values: dict[str, str] | None) -> pg.GroupState:
    defaults = tuple(pg.Parameter.from_aws(d) for d in DEFAULTS)
    params = tuple(pg.Parameter.from_aws(d) for d in described(values or {}))
    return pg.GroupState(GROUP, FAMILY, values is not None, params, defaults, tuple(DESIRED.items()))


# --- pure planning --------------------------------------------------------------------------------

def test_desired_values_use_auroras_names_and_the_parameters():
    params = load_parameters(LAB)
    assert pg.desired_values(params) == DESIRED


def test_a_new_group_changes_every_desired_value_with_the_right_apply_method():
    changes = state(None).changes
    assert [c.name for c in changes] == list(DESIRED) and all(c.needed for c in changes)
    methods = {c.name: c.to_aws()["ApplyMethod"] for c in changes}
    assert methods == {"binlog_format": "pending-reboot", "gtid-mode": "pending-reboot",
                       "enforce_gtid_consistency": "pending-reboot",
                       "log_bin_trust_function_creators": "immediate",
                       "auto_increment_increment": "immediate", "auto_increment_offset": "immediate"}


def test_only_values_that_differ_are_changed_and_case_or_zeros_do_not_count():
    s = state({**DESIRED, "gtid-mode": "on", "auto_increment_offset": "01", "binlog_format": "MIXED"})
    needed = [c.name for c in s.changes if c.needed]
    assert needed == ["binlog_format"]
    frame = s.to_frame()
    assert list(frame.columns) == ["parameter", "current", "desired", "apply type", "apply method", "change"]
    assert frame.set_index("parameter").loc["binlog_format", "current"] == "MIXED"


def test_a_group_with_the_right_values_plans_nothing():
    assert not any(c.needed for c in state(DESIRED).changes)


def test_an_unknown_or_unmodifiable_parameter_is_refused_before_any_change():
    current = {p.name: p for p in state(None).parameters}
    with pytest.raises(AwsError, match="not in family") as e:
        pg.plan_changes({"gtid_mode": "ON"}, current, family=FAMILY)
    assert "aurora_parameter_group_family" in e.value.hint
    current["binlog_format"] = pg.Parameter("binlog_format", "OFF", "static", "system", modifiable=False)
    with pytest.raises(AwsError, match="not modifiable"):
        pg.plan_changes({"binlog_format": "ROW"}, current, family=FAMILY)


def test_comparison_shows_desired_and_other_changed_rows_with_a_verdict():
    s = state({**DESIRED, "server_audit_logging": "1"})
    result = pg.comparison(s)
    frame = result.to_frame()
    assert list(frame.columns) == ["parameter", "default", "this group", "changed"]
    rows = frame.set_index("parameter")
    assert list(rows.index) == [*DESIRED, "server_audit_logging"]
    assert rows.loc["gtid-mode", "default"] == "OFF_PERMISSIVE" and rows.loc["gtid-mode", "this group"] == "ON"
    assert rows.loc["auto_increment_offset", "default"] == "(engine default)"
    assert set(rows["changed"]) == {"yes"}
    assert result.ok and result.verdict.startswith("PASS")


def test_comparison_fails_a_missing_value():
    result = pg.comparison(state({**DESIRED, "binlog_format": "MIXED"}))
    assert not result.ok and "FAIL" in result.verdict and "binlog_format" in result.verdict


# --- the AWS calls (Stubber against the real service model) -------------------------------------

@pytest.fixture
def rb():
    session = open_session(LAB, quiet=True)
    yield session
    session.close()


def stub(rb) -> Stubber:
    return Stubber(rb.aws("rds"))


def defaults_page() -> dict:
    return {"EngineDefaults": {"DBParameterGroupFamily": FAMILY, "Parameters": DEFAULTS}}


def not_found(stubber: Stubber) -> None:
    stubber.add_client_error("describe_db_cluster_parameter_groups", "DBParameterGroupNotFound",
                             "DBClusterParameterGroup not found: " + GROUP, 404,
                             expected_params={"DBClusterParameterGroupName": GROUP})


def test_missing_group_is_created_then_modified(rb):
    with stub(rb) as s:
        s.add_response("describe_engine_default_cluster_parameters", defaults_page(),
                       {"DBParameterGroupFamily": FAMILY})
        not_found(s)
        change = pg.plan(rb)
        frame = change.plan.to_frame()
        assert list(frame["action"]) == ["CreateDBClusterParameterGroup"] + ["ModifyDBClusterParameterGroup"] * 6
        s.add_response("create_db_cluster_parameter_group",
                       {"DBClusterParameterGroup": {"DBClusterParameterGroupName": GROUP,
                                                    "DBParameterGroupFamily": FAMILY}},
                       {"DBClusterParameterGroupName": GROUP, "DBParameterGroupFamily": FAMILY,
                        "Description": ANY})
        s.add_response("modify_db_cluster_parameter_group", {"DBClusterParameterGroupName": GROUP},
                       {"DBClusterParameterGroupName": GROUP,
                        "Parameters": [c.to_aws() for c in change.changes]})
        applied = change.apply()
        s.assert_no_pending_responses()
    assert list(applied["parameter"]) == list(DESIRED)


def test_existing_group_with_the_right_values_is_an_empty_plan(rb):
    with stub(rb) as s:
        s.add_response("describe_engine_default_cluster_parameters", defaults_page(),
                       {"DBParameterGroupFamily": FAMILY})
        s.add_response("describe_db_cluster_parameter_groups",
                       {"DBClusterParameterGroups": [{"DBClusterParameterGroupName": GROUP,
                                                      "DBParameterGroupFamily": FAMILY}]},
                       {"DBClusterParameterGroupName": GROUP})
        s.add_response("describe_db_cluster_parameters", {"Parameters": described(DESIRED)},
                       {"DBClusterParameterGroupName": GROUP})
        change = pg.plan(rb)
        s.assert_no_pending_responses()
    assert change.plan.is_empty


def test_existing_group_of_another_family_is_an_error(rb):
    with stub(rb) as s:
        s.add_response("describe_engine_default_cluster_parameters", defaults_page(),
                       {"DBParameterGroupFamily": FAMILY})
        s.add_response("describe_db_cluster_parameter_groups",
                       {"DBClusterParameterGroups": [{"DBClusterParameterGroupName": GROUP,
                                                      "DBParameterGroupFamily": "aurora-mysql5.7"}]},
                       {"DBClusterParameterGroupName": GROUP})
        with pytest.raises(AwsError, match="aurora-mysql5.7") as e:
            pg.inspect(rb)
    assert "family cannot change" in e.value.hint


def test_compare_before_the_group_exists_is_not_applied(rb):
    with stub(rb) as s:
        s.add_response("describe_engine_default_cluster_parameters", defaults_page(),
                       {"DBParameterGroupFamily": FAMILY})
        not_found(s)
        with pytest.raises(NotApplied, match=GROUP) as e:
            pg.compare(rb)
    assert "parameter_group" in e.value.hint
