"""runbook_lib.phases.preflight.restore_s3: what a restore from S3 refuses, on the outputs real servers and
tools give (version strings, SHOW VARIABLES values, information_schema rows, `xtrabackup --version`)."""
from __future__ import annotations

import dataclasses

import pytest

from runbook_lib.core.errors import CheckFailed
from runbook_lib.mysql.identity import Flavor
from runbook_lib.phases.preflight.restore_s3 import (
    RestoreFacts,
    _compression,
    _option,
    inside_datadir,
    minor_version_row,
    xtrabackup_row,
)
from tests.unit.phases.preflight.test_preflight import LAB, preflight, source

# SHOW GLOBAL VARIABLES of a stock Oracle MySQL 8.0.40 (innodb_log_files_in_group is gone since 8.0.30)
MYSQL80 = {"innodb_page_size": "16384", "innodb_data_file_path": "ibdata1:12M:autoextend",
           "innodb_log_files_in_group": None, "datadir": "/var/lib/mysql/", "default_table_encryption": "OFF",
           "innodb_redo_log_encrypt": "OFF", "innodb_undo_log_encrypt": "OFF"}
MYSQL57 = {**MYSQL80, "innodb_log_files_in_group": "2", "default_table_encryption": None}
COMMUNITY = "MySQL Community Server - GPL"
PERCONA = "Percona Server (GPL), Release 30, Revision 4b05b2a3"
# `xtrabackup --version` (stderr) of Percona's packages
PXB_8035 = "xtrabackup version 8.0.35-31 based on MySQL server 8.0.35 Linux (x86_64) (revision id: 55ec21d7)"
PXB_8040 = "xtrabackup version 8.0.40-31 based on MySQL server 8.0.40 Linux (x86_64) (revision id: 0e0c6f83)"
PXB_8029 = "xtrabackup version 8.0.29-22 based on MySQL server 8.0.29 Linux (x86_64) (revision id: c31e7ddcce3)"
PXB_24 = "xtrabackup version 2.4.29 based on MySQL server 5.7.44 Linux (x86_64) (revision id: 2e6c0951)"
PXB_84 = "xtrabackup version 8.4.0-3 based on MySQL server 8.4.0 Linux (x86_64) (revision id: da5ac5b5)"


def facts(**changes) -> RestoreFacts:
    return dataclasses.replace(RestoreFacts(dict(MYSQL80), COMMUNITY, xtrabackup=PXB_8035), **changes)


def pf_for(version=(8, 0, 35), engine="8.0.mysql_aurora.3.08.0", **changes):
    params = dataclasses.replace(LAB, aurora_engine_version=engine, aws_endpoint_url="",
                                 **{k: changes.pop(k) for k in list(changes) if k in ("xtrabackup_command",)})
    flavor = Flavor.MYSQL57 if version[:2] == (5, 7) else Flavor.MYSQL80
    pf = preflight(src=source(version, flavor), params=params)
    return dataclasses.replace(pf, restore=facts(**changes))


def rows(pf) -> dict:
    return {r.item: r for r in pf.checks("restore_s3")}


def failed(pf) -> set[str]:
    return {item for item, r in rows(pf).items() if r.status == "fail"}


def test_a_clean_oracle_80_source_passes_every_row():
    assert failed(pf_for()) == set()
    assert rows(pf_for())["MySQL version: source ≤ Aurora engine"].status == "pass"


def test_source_minor_newer_than_aurora_fails_naming_both_and_the_fix():
    r = minor_version_row((8, 0, 40), "8.0.40", "8.0.mysql_aurora.3.08.0")
    assert r.status == "fail"
    assert "MySQL 8.0.40" in r.source and "MySQL 8.0.39" in r.aurora and "3.08.0" in r.aurora
    assert "8.0.mysql_aurora.3.09.0 (MySQL 8.0.40) is the oldest that fits" in r.advice
    assert minor_version_row((8, 0, 39), "8.0.39", "8.0.mysql_aurora.3.08.0").status == "pass"
    none_yet = minor_version_row((8, 0, 45), "8.0.45-log", "8.0.mysql_aurora.3.12.0")
    assert none_yet.status == "fail" and "no Aurora release" in none_yet.advice
    old = minor_version_row((8, 0, 13), "8.0.13", "8.0.mysql_aurora.3.05.2")
    assert old.status == "fail" and "8.0.28" in old.advice
    assert minor_version_row((5, 7, 44), "5.7.44", "5.7.mysql_aurora.2.11.6").status == "fail"
    assert minor_version_row((5, 7, 44), "5.7.44", "5.7.mysql_aurora.2.12.5").status == "pass"
    assert minor_version_row((8, 0, 30), "8.0.30", "8.0.mysql_aurora.3.99.0").status == "warn"
    assert minor_version_row((8, 0, 30), "8.0.30", "3.08").status == "fail"


def test_preflight_fails_on_a_source_newer_than_the_aurora_engine(capsys):
    """The whole preflight of a MySQL 8.0.40 source planned into Aurora 3.08 (MySQL 8.0.39) stops."""
    pf = pf_for(version=(8, 0, 40), xtrabackup=PXB_8040)
    with pytest.raises(CheckFailed) as info:
        pf.conclude()
    assert info.value.failed == ["MySQL version: source ≤ Aurora engine"]
    r = rows(pf)["MySQL version: source ≤ Aurora engine"]
    assert "8.0.40" in r.source and "8.0.39" in r.aurora and "8.0.mysql_aurora.3.09.0" in r.advice
    assert "8.0.mysql_aurora.3.09.0" in capsys.readouterr().out


def test_the_lab_source_97_is_judged_by_the_major_rows_not_this_one():
    r = minor_version_row((9, 7, 4), "9.7.4", LAB.aurora_engine_version)
    assert r.status == "info" and "different major" in r.advice


def test_percona_server_is_refused():
    by_comment = failed(pf_for(version_comment=PERCONA))
    by_tables = rows(pf_for(percona_tables=("compression_dictionary", "compression_dictionary_cols")))
    assert "Oracle MySQL source (not Percona Server)" in by_comment
    assert by_tables["Oracle MySQL source (not Percona Server)"].status == "fail"
    assert "compression_dictionary" in by_tables["Oracle MySQL source (not Percona Server)"].advice


def test_layout_settings_aws_requires():
    assert "InnoDB page size" in failed(pf_for(variables={**MYSQL80, "innodb_page_size": "32768"}))
    two = failed(pf_for(variables={**MYSQL80, "innodb_data_file_path": "ibdata1:50M;ibdata2:50M:autoextend"}))
    renamed = failed(pf_for(variables={**MYSQL80, "innodb_data_file_path": "ibdata01:50M:autoextend"}))
    assert "one system tablespace file (ibdata1)" in two & renamed
    assert "innodb_log_files_in_group" not in rows(pf_for())          # 8.0.30+ has no such variable
    old = pf_for(version=(5, 7, 44), engine="5.7.mysql_aurora.2.12.5", variables={**MYSQL57},
                 xtrabackup=PXB_24)
    assert failed(old) == set()
    three = pf_for(version=(5, 7, 44), engine="5.7.mysql_aurora.2.12.5",
                   variables={**MYSQL57, "innodb_log_files_in_group": "3"}, xtrabackup=PXB_24)
    assert failed(three) == {"innodb_log_files_in_group"}


def test_encryption_compression_and_outside_rows_list_what_they_found():
    pf = pf_for(compressed=("app.t (ROW_FORMAT=COMPRESSED)",), encrypted=("table app.secret",),
                outside=("app/far: /mnt/other/app/far.ibd",),
                variables={**MYSQL80, "default_table_encryption": "ON"})
    r = rows(pf)
    assert failed(pf) == {"compressed tables or pages", "encryption at rest (InnoDB)",
                          "tablespaces outside the data directory"}
    assert "app.t (ROW_FORMAT=COMPRESSED)" in r["compressed tables or pages"].source
    assert "table app.secret" in r["encryption at rest (InnoDB)"].source
    assert "default_table_encryption=ON" in r["encryption at rest (InnoDB)"].source
    assert "/mnt/other/app/far.ibd" in r["tablespaces outside the data directory"].source


def test_create_options_as_information_schema_shows_them():
    # information_schema.TABLES.CREATE_OPTIONS of MySQL 9.7 (see the lab drills' test)
    assert _compression('COMPRESSION="zlib"') and _compression("row_format=DYNAMIC COMPRESSION='lz4'")
    assert not _compression('COMPRESSION="None"') and not _compression("row_format=COMPRESSED")
    assert _option("ENCRYPTION='Y'", "ENCRYPTION") == "ENCRYPTION='Y'"
    assert inside_datadir("./app/t.ibd", "/var/lib/mysql/") and inside_datadir("ibdata1", "/var/lib/mysql/")
    assert inside_datadir("/var/lib/mysql/undo_001", "/var/lib/mysql/")
    assert not inside_datadir("/mnt/other/app/far.ibd", "/var/lib/mysql/")
    assert not inside_datadir("/var/lib/mysql2/far.ibd", "/var/lib/mysql")


def test_partial_backup_options_in_the_command():
    bad = pf_for(xtrabackup_command="xtrabackup --databases=app_crm")
    assert "full backup (no partial-backup options)" in failed(bad)
    assert "--databases=app_crm" in rows(bad)["full backup (no partial-backup options)"].advice
    assert "full backup (no partial-backup options)" not in failed(pf_for(xtrabackup_command="xtrabackup --parallel=4"))


def test_xtrabackup_version_rules():
    def status(version, line):
        return xtrabackup_row(version, facts(xtrabackup=line)).status
    assert status((8, 0, 35), PXB_8035) == "pass"
    assert status((8, 0, 40), PXB_8035) == "fail"            # server newer than XtraBackup: it stops
    assert status((8, 0, 29), PXB_8029) == "pass"
    assert status((8, 0, 29), PXB_8035) == "fail"            # 8.0.35+ backs up 8.0.34+ only
    assert status((5, 7, 44), PXB_24) == "pass" and status((5, 7, 44), PXB_8035) == "fail"
    assert status((8, 4, 3), PXB_84) == "pass" and status((8, 4, 3), PXB_8035) == "fail"
    unreachable = xtrabackup_row((8, 0, 35), facts(xtrabackup="", xtrabackup_problem="'xtrabackup' is not found"))
    assert unreachable.status == "info" and "not found" in unreachable.aurora
    assert "2.4 for 5.7" in unreachable.advice

