"""Phases 01-07 on a lab whose stand-in plays Aurora MySQL 8.4 (``runbook lab up --aurora 8.4``).

The session's notebook pipeline (tests/notebooks) rehearses Aurora 3, as parameters/lab.yaml says;
this module runs the same notebooks, headless with papermill, against a lab of its own as Aurora
8.4: family aurora-mysql8.4, engine 8.4.mysql_aurora.8.4.7, only the Aurora 3 procedure names, TLS
on Aurora's channel through mysql.rds_set_binlog_source_ssl.  Its own group in tests/conftest.py
(SHARED_LABS), so ``make test`` runs it on the worker that does not run the session's pipeline.
"""
from __future__ import annotations

import pytest
import yaml

from runbook_lib.run import kernel
from tests.conftest import LabHandle
from tests.notebooks.conftest import Pipeline, outputs_text
from tests.support import own_lab, query, replica_status, rows

pytestmark = [pytest.mark.lab, pytest.mark.notebooks, pytest.mark.slow]

FAILOVER = {"batch_rows": 1000, "interval_seconds": 0.2, "duration_seconds": 15, "failover_at_seconds": 5,
            "sample_hz": 4, "converge_timeout_seconds": 60}     # as tests/notebooks/test_07_failover_test.py


@pytest.fixture(scope="module")
def lab84(tmp_path_factory):
    from runbook_lib.lab import inspect
    with own_lab("aurora84", persona_rows=rows(), aurora="8.4") as (state, _):
        yield LabHandle(state, inspect.write_params(state, tmp_path_factory.mktemp("lab84") / "lab.yaml"))


@pytest.fixture(scope="module")
def pipeline84(lab84, tmp_path_factory) -> Pipeline:
    kernel.ensure()
    return Pipeline(lab84, tmp_path_factory.mktemp("executed84"))


def test_parameters_are_aurora_84(lab84):
    p = yaml.safe_load(lab84.params_file.read_text())
    assert (p["aurora_engine_version"], p["aurora_parameter_group_family"]) == \
        ("8.4.mysql_aurora.8.4.7", "aurora-mysql8.4")


def test_phases_01_to_06_replicate_both_ways_with_tls(lab84, pipeline84):
    done = pipeline84.through("06_validation")
    assert query(lab84.instances["aurora"], "SELECT value FROM mysql.rds_sysinfo "
                                            "WHERE name = 'aurora_version'") == [{"value": "8.4.7"}]
    procedures = {r["n"] for r in query(lab84.instances["aurora"], "SELECT ROUTINE_NAME AS n FROM "
                                        "information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'mysql'")}
    assert "rds_set_binlog_source_ssl" in procedures and "rds_reset_external_master" not in procedures
    text = outputs_text(done["05_replication"])
    assert "caching_sha2_password; source → aurora TLS (mysql.rds_set_binlog_source_ssl(1))" in text
    assert "PASS: bi-directional replication" in text and "PASS: canary" in text
    for replica in ("aurora", "onprem"):
        s = replica_status(lab84.instances[replica])
        assert (s["Replica_IO_Running"], s["Replica_SQL_Running"], s["Source_SSL_Allowed"]) == ("Yes", "Yes", "Yes")
    assert "PASS" in outputs_text(done["06_validation"])


def test_a_second_run_of_05_plans_nothing(pipeline84):
    text = outputs_text(pipeline84.run("05_replication"))
    assert "PASS: bi-directional replication" in text
    assert "nothing to do (step 'replication_users')" in text and "nothing to do (step 'replication')" in text


def test_failover_test_on_aurora_84_loses_nothing(lab84, pipeline84):
    nb = pipeline84.run("07_failover_test", **FAILOVER)
    text = outputs_text(nb)
    assert "CONVERGED: run" in text and "NOT CONVERGED" not in text, text[-2000:]
    verdicts = query(lab84.instances["onprem"], "SELECT verdict FROM runbook.failover_runs")
    assert [v["verdict"] for v in verdicts] == ["converged"]
