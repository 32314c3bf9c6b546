"""runbook_lib.context.params: the schema, loading, type and range checks, the committed parameter files."""
from __future__ import annotations

import dataclasses
import re
import sys
import types
from pathlib import Path

import pytest
import yaml

from runbook_lib.context.params import FIELDS, RunbookParameters, describe_parameters, load_parameters
from runbook_lib.core.errors import MissingParameter, ParameterError, UnknownParameter
from tests.support import REPO

LAB = REPO / "parameters" / "lab.yaml"
EXAMPLE = REPO / "parameters" / "example-aws.yaml"

MINIMAL = {
    "environment": "test",
    "source_host": "db1.example.internal",
    "source_admin_user": "dba",
    "source_admin_password": "env:SRC_PW",
    "aurora_host": "aurora.cluster-x.us-east-1.rds.amazonaws.com",
    "aurora_admin_password": "secretsmanager:prod/aurora#password",
    "aurora_cluster_id": "c1",
    "aurora_writer_instance": "c1-1",
    "aurora_parameter_group": "pg1",
    "s3_bucket": "bucket",
    "restore_role_arn": "arn:aws:iam::123456789012:role/restore",
    "replication_password": "prompt:",
}


def write(tmp_path: Path, data: dict, name: str = "env.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def load(tmp_path: Path, **changes) -> RunbookParameters:
    data = {**MINIMAL, **changes}
    return load_parameters(write(tmp_path, {k: v for k, v in data.items() if v is not ...}))


# --- the committed files --------------------------------------------------------------------

def test_lab_file_loads_with_the_lab_values():
    p = load_parameters(LAB)
    assert (p.environment, p.source_host, p.source_port, p.aurora_port) == ("lab", "127.0.0.1", 23306, 23307)
    assert p.aws_endpoint_url == "http://127.0.0.1:23308"
    assert p.source_admin_password == "secretsmanager:runbook-lab/onprem/dba"
    assert p.backup_method == "clone" and p.replication_connect_retry == 2
    assert p.scopes["crm"] == {"schemas": ["app_crm"], "accounts": ["crm_app@%"]}
    assert {"source_binlog", "restore", "cutover:crm", "fallback:crm", "cleanup:*"} <= set(p.approvals)


def test_example_file_is_a_template_that_refuses_to_load_until_filled_in(tmp_path):
    with pytest.raises(ParameterError, match="placeholder"):
        load_parameters(EXAMPLE)
    filled = re.sub(r"<([^<>]+)>", r"\1", EXAMPLE.read_text(encoding="utf-8"))
    filled_path = tmp_path / "filled.yaml"
    filled_path.write_text(filled, encoding="utf-8")
    p = load_parameters(filled_path)
    assert p.approvals == [] and p.aws_endpoint_url == ""
    assert all(getattr(p, name).startswith("env:") for name in
               ("source_admin_password", "aurora_admin_password", "replication_password"))


def test_example_file_documents_every_parameter():
    names = set(yaml.safe_load(re.sub(r"<([^<>]+)>", r"\1", EXAMPLE.read_text(encoding="utf-8"))))
    assert names == set(FIELDS)


# --- the schema -----------------------------------------------------------------------------

def test_describe_parameters_lists_every_field_with_a_description():
    frame = describe_parameters()
    assert list(frame.columns) == ["name", "type", "default", "description"]
    assert list(frame["name"]) == list(FIELDS)
    assert frame["description"].str.len().min() > 10
    row = frame.set_index("name")
    assert row.loc["source_host", "default"] == "(required)"
    assert row.loc["source_port", "type"] == "int" and row.loc["source_port", "default"] == "3306"
    assert row.loc["replication_password", "type"] == "secret ref"
    assert "verify_ca" in row.loc["source_tls", "description"]


def test_defaults_and_helpers(tmp_path):
    p = load(tmp_path)
    assert p.source_port == 3306 and p.aurora_admin_user == "admin" and p.expected_restore_hours == 6.0
    assert p.source_host_for_aurora() == "db1.example.internal"
    assert p.aurora_host_for_source() == MINIMAL["aurora_host"]
    p2 = load(tmp_path, source_replication_host="10.0.0.5", aurora_replication_host="10.1.0.9",
              notebook_parameters={"07_failover_test": {"batch_rows": 1000}})
    assert (p2.source_host_for_aurora(), p2.aurora_host_for_source()) == ("10.0.0.5", "10.1.0.9")
    assert p2.knobs("07_failover_test") == {"batch_rows": 1000} and p2.knobs("01_preflight") == {}


def test_parameters_are_frozen(tmp_path):
    p = load(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.source_port = 1  # type: ignore[misc]


def test_redacted_dict_holds_references_only(tmp_path):
    d = load(tmp_path).redacted_dict()
    assert d["source_admin_password"] == "env:SRC_PW" and d["replication_password"] == "prompt:"
    assert set(d) == set(FIELDS)


def test_int_for_a_float_parameter_is_accepted(tmp_path):
    assert load(tmp_path, expected_restore_hours=3).expected_restore_hours == 3.0


def test_null_means_the_default_for_optional_parameters(tmp_path):
    assert load(tmp_path, aws_profile=None).aws_profile == ""


# --- rejected files -------------------------------------------------------------------------

def test_unknown_name_suggests_the_close_one(tmp_path):
    with pytest.raises(UnknownParameter) as e:
        load(tmp_path, sorce_host="x")
    assert "sorce_host" in str(e.value) and "source_host" in str(e.value) and "env.yaml" in str(e.value)


def test_wrong_type_names_parameter_file_expected_and_actual(tmp_path):
    with pytest.raises(ParameterError) as e:
        load(tmp_path, source_port="3306")
    text = str(e.value)
    assert "source_port" in text and "env.yaml" in text and "expected int" in text and "got str" in text
    assert "without quotes" in e.value.hint


def test_yaml_boolean_for_a_string_explains_quoting(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(MINIMAL) + "source_tls: off\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="expected str, got bool") as e:
        load_parameters(path)
    assert "quotes" in e.value.hint


def test_bool_is_not_an_int(tmp_path):
    with pytest.raises(ParameterError, match="expected int, got bool"):
        load(tmp_path, source_port=True)


@pytest.mark.parametrize("name", ["source_host", "restore_role_arn", "replication_password"])
def test_missing_required(tmp_path, name):
    with pytest.raises(MissingParameter, match=name):
        load(tmp_path, **{name: ...})


def test_empty_required_string_is_missing(tmp_path):
    with pytest.raises(MissingParameter, match="aurora_host"):
        load(tmp_path, aurora_host="")


@pytest.mark.parametrize("literal", ["hunter2", "env:", "secretsmanager:", "prompt:yes", "env:A B"])
def test_literal_secret_is_refused_without_repeating_it(tmp_path, literal):
    with pytest.raises(ParameterError, match="looks like a literal secret") as e:
        load(tmp_path, aurora_admin_password=literal)
    assert literal not in str(e.value).replace("env:NAME", "").replace("secretsmanager:ID", "")
    assert e.value.name == "aurora_admin_password"


def test_secret_of_wrong_type_does_not_show_the_value(tmp_path):
    with pytest.raises(ParameterError, match="got int") as e:
        load(tmp_path, source_admin_password=98765432)
    assert "98765432" not in str(e.value)


def test_invalid_yaml_does_not_echo_the_line(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text("environment: x\nsource_admin_password: s3cr3t: oops\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="not valid YAML at line 2") as e:
        load_parameters(path)
    assert "s3cr3t" not in str(e.value)


def test_duplicate_name_is_refused(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(MINIMAL) + "source_port: 1\nsource_port: 2\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="given twice"):
        load_parameters(path)


def test_not_a_mapping_and_missing_file(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ParameterError, match="flat mapping"):
        load_parameters(path)
    with pytest.raises(ParameterError, match="cannot read"):
        load_parameters(tmp_path / "nope.yaml")


@pytest.mark.parametrize("changes, match", [
    ({"source_tls": "strict"}, "not one of disabled, preferred, required, verify_ca"),
    ({"aurora_tls": "verify_ca"}, "aurora_tls_ca"),
    ({"backup_method": "mysqldump"}, "not one of xtrabackup, clone"),
    ({"source_port": 0}, "outside 1..65535"),
    ({"aurora_port": 65536}, "outside 1..65535"),
    ({"auto_increment_increment": 1}, "outside 2..65535"),
    ({"source_auto_increment_offset": 3}, "larger than auto_increment_increment"),
    ({"aurora_binlog_retention_hours": 0}, "outside 1..2160"),
    ({"aurora_binlog_retention_hours": 2161}, "outside 1..2160"),
    ({"source_binlog_expire_seconds": 3600}, "shorter than expected_restore_hours"),
    ({"aws_endpoint_url": "127.0.0.1:23308"}, "not an http"),
    ({"report_s3_uri": "bucket/x"}, "not an s3:// URI"),
    ({"restore_role_arn": "restore-role"}, "not an IAM role ARN"),
    ({"aurora_reader_instance": "c1-1"}, "same as aurora_writer_instance"),
    ({"app_schemas": "app_crm"}, "expected list\\[str\\]"),
    ({"scopes": {"crm": ["app_crm"]}}, "expected dict\\[str, dict\\]"),
])
def test_values_out_of_range_or_inconsistent(tmp_path, changes, match):
    with pytest.raises(ParameterError, match=match):
        load(tmp_path, **changes)


def test_equal_offsets_explain_the_collision(tmp_path):
    with pytest.raises(ParameterError) as e:
        load(tmp_path, source_auto_increment_offset=1, aurora_auto_increment_offset=1)
    assert e.value.name == "aurora_auto_increment_offset" and "collide" in e.value.hint


def test_zero_binlog_expiry_means_never_purge(tmp_path):
    assert load(tmp_path, source_binlog_expire_seconds=0).source_binlog_expire_seconds == 0


@pytest.mark.parametrize("scopes, match", [
    ({"crm": {"schemas": ["app_crm"]}}, "not in app_schemas"),
    ({"crm": {"schemas": ["app_crm"], "accounts": ["crm_app"]}}, "not user@host"),
    ({"crm": {"schemas": ["app_crm"], "users": []}}, "unknown keys users"),
    ({"crm": {"schemas": []}}, "is empty"),
    ({"CRM": {"schemas": ["app_crm"]}}, "lower case"),
])
def test_scopes_are_checked(tmp_path, scopes, match):
    with pytest.raises(ParameterError, match=match):
        load(tmp_path, app_schemas=["app_crm"] if "not in" not in match else [], scopes=scopes)


@pytest.mark.parametrize("approvals, match", [
    (["replicaton"], "did you mean replication"),
    (["cutover:*"], "approved by name"),
    (["*"], "not a step id"),
    (["cutover:billing"], "names no scope"),
    (["cutover"], "not a step id"),
])
def test_yaml_approvals_are_checked(tmp_path, approvals, match):
    scopes = {"crm": {"schemas": ["app_crm"], "accounts": ["crm_app@%"]}}
    with pytest.raises(ParameterError, match=match) as e:
        load(tmp_path, app_schemas=["app_crm"], scopes=scopes, approvals=approvals)
    assert e.value.name == "approvals" and "env.yaml" in str(e.value)


# --- endpoints ------------------------------------------------------------------------------

def test_endpoints_are_built_from_the_parameters(tmp_path, monkeypatch):
    """Against a stand-in Endpoint with the agreed fields, so this does not wait for connection.py."""
    @dataclasses.dataclass(frozen=True)
    class Endpoint:
        role: str
        host: str
        port: int
        user: str
        tls: str
        tls_ca: str
        connect_timeout: float = 5.0
        read_timeout: float = 60.0

    monkeypatch.setitem(sys.modules, "runbook_lib.mysql.connection", types.SimpleNamespace(Endpoint=Endpoint))
    p = load(tmp_path, source_tls="required", aurora_tls="verify_ca", aurora_tls_ca="/ca.pem")
    assert p.source_endpoint() == Endpoint("source", "db1.example.internal", 3306, "dba", "required", "")
    assert p.aurora_endpoint() == Endpoint("aurora", MINIMAL["aurora_host"], 3306, "admin", "verify_ca",
                                           "/ca.pem")


def test_endpoints_with_the_real_connection_module():
    connection = pytest.importorskip("runbook_lib.mysql.connection",
                                     reason="runbook_lib/connection.py not written yet")
    p = load_parameters(LAB)
    src, aur = p.source_endpoint(), p.aurora_endpoint()
    assert isinstance(src, connection.Endpoint)
    assert (src.role, src.host, src.port, src.user) == ("source", "127.0.0.1", 23306, "dba")
    assert (aur.role, aur.port, aur.user) == ("aurora", 23307, "admin")
