"""Phase 1, what a restore from S3 refuses: read from the source before anything is copied.

A restore from S3 is the longest step of the migration; everything AWS documents as a reason it
refuses or fails is read here (SELECT, SHOW and ``xtrabackup --version`` only) into a frozen
:class:`RestoreFacts`, and :func:`restore_rows` (pure) turns it into check rows.  The pages:

* Aurora User Guide, "Physical migration from MySQL by using Percona XtraBackup and Amazon S3": no
  backward migration across major *or minor* versions (nor from MySQL 8.0.11, 8.0.13 or 8.0.15 into
  Aurora 3.05 and later: upgrade the source to 8.0.28 first); Percona Server for MySQL is not a
  supported source (extra tables in its ``mysql`` schema); no encrypted source database; no tables
  outside the default data directory; no partial backups (``--tables``, ``--tables-exclude``,
  ``--tables-file``, ``--databases``, ``--databases-exclude``, ``--databases-file``); Percona
  XtraBackup 2.4 for MySQL 5.7 and 8.0 for MySQL 8.0;
* "Migrating data to an Amazon Aurora MySQL DB cluster": ``innodb_page_size`` 16 KB, one data file
  ``ibdata1`` in ``innodb_data_file_path``, ``innodb_log_files_in_group`` 2;
* "Reducing the time for physical migration to Amazon Aurora MySQL": no compressed tables or pages
  (``ROW_FORMAT=COMPRESSED``, ``COMPRESSION='zlib'|'lz4'``);
* Percona XtraBackup, "Server version and backup version comparison" (8.0, 8.4) and "Supported
  versions" (8.0): the backup stops when the server is newer than XtraBackup; 8.0.35 and later back up
  8.0.34 and later; 8.4 backs up 8.4.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runbook_lib.aws.engine_versions import (
    RELEASE_NOTES,
    oldest_engine_for,
    parse_engine_version,
    version_text,
)
from runbook_lib.core.display import CheckResult
from runbook_lib.mysql.identity import parse_version

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.context.params import RunbookParameters
    from runbook_lib.mysql.connection import Server
    from runbook_lib.phases.preflight.steps import Preflight

VARIABLES = ("innodb_page_size", "innodb_data_file_path", "innodb_log_files_in_group", "datadir",
             "default_table_encryption", "innodb_redo_log_encrypt", "innodb_undo_log_encrypt")
PARTIAL_OPTIONS = ("--tables", "--tables-exclude", "--tables-file", "--databases", "--databases-exclude",
                   "--databases-file")
_SYSTEM = "('mysql', 'sys', 'performance_schema', 'information_schema')"
_XTRABACKUP = re.compile(r"xtrabackup(?:\s+version)?\s+(\d+\.\d+\.\d+)")
PHASE4 = "phase 4 (04_backup_restore)"


@dataclass(frozen=True)
class RestoreFacts:
    """What the source shows that a restore from S3 depends on."""

    variables: dict
    version_comment: str = ""
    percona_tables: tuple[str, ...] = ()        # mysql.compression_dictionary* and the like
    compressed: tuple[str, ...] = ()            # 'schema.table (ROW_FORMAT=COMPRESSED)' / '(COMPRESSION=...)'
    encrypted: tuple[str, ...] = ()             # tables and tablespaces
    outside: tuple[str, ...] = ()               # 'tablespace: path' outside the data directory
    xtrabackup: str = ""                        # the first line of `xtrabackup --version`; '' when not run
    xtrabackup_problem: str = ""                # why it was not run or failed

    @classmethod
    def read(cls, server: Server, params: RunbookParameters) -> RestoreFacts:
        v = server.variables(*VARIABLES)
        d = server.dialect
        tables = server.query(f"""SELECT CONCAT(table_schema, '.', table_name) AS name, row_format AS fmt,
            create_options AS opts FROM information_schema.tables WHERE table_type = 'BASE TABLE'
            AND table_schema NOT IN {_SYSTEM} AND (row_format = 'Compressed'
              OR create_options LIKE '%COMPRESSION=%' OR create_options LIKE '%ENCRYPTION=%')
            ORDER BY 1""")
        compressed = [f"{t['name']} (" + ("ROW_FORMAT=COMPRESSED" if t["fmt"] == "Compressed" else
                                          _option(t["opts"], "COMPRESSION")) + ")"
                      for t in tables if t["fmt"] == "Compressed" or _compression(t["opts"])]
        encrypted = [f"table {t['name']}" for t in tables if _option(t["opts"], "ENCRYPTION").upper() in
                     ("ENCRYPTION='Y'", 'ENCRYPTION="Y"')]
        sql = d.encrypted_tablespaces()
        if sql is not None:
            named = {e.split(" ", 1)[1].replace(".", "/") for e in encrypted}
            encrypted += [f"tablespace {r['name']}" for r in server.query(sql) if r["name"] not in named]
        files = server.query(d.tablespace_files())
        outside = tuple(f"{r['name']}: {r['path']}" for r in files
                        if not inside_datadir(str(r["path"] or ""), str(v["datadir"] or "")))
        percona = tuple(str(r["name"]) for r in server.query(
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'mysql' "
            "AND table_name LIKE 'compression\\_dictionary%' ORDER BY 1"))
        line, problem = xtrabackup_version(params.xtrabackup_command) if params.backup_method == "xtrabackup" \
            else ("", f"backup_method is {params.backup_method!r}: XtraBackup is not used")
        return cls(dict(v), server.identity.version_comment, percona, tuple(compressed), tuple(encrypted),
                   outside, line, problem)


def _option(create_options: str | None, name: str) -> str:
    m = re.search(rf"{name}=(['\"]?)([^'\" ]*)\1", create_options or "", re.IGNORECASE)
    return f"{name}='{m[2]}'" if m else ""


def _compression(create_options: str | None) -> bool:
    value = _option(create_options, "COMPRESSION").split("=", 1)[-1].strip("'").lower()
    return value not in ("", "none")


def inside_datadir(path: str, datadir: str) -> bool:
    """A data file's path (as information_schema shows it: './schema/t.ibd', 'ibdata1', or absolute)
    lies in the data directory."""
    if not path.startswith("/"):
        return not path.startswith("..")
    return path.startswith(datadir.rstrip("/") + "/")


def xtrabackup_version(command: str) -> tuple[str, str]:
    """(first line of ``<command> --version``, '') when the binary is reachable here; else ('', why)."""
    argv = shlex.split(command)
    if not argv or shutil.which(argv[0]) is None:
        return "", f"{argv[0] if argv else command!r} is not found on this machine"
    try:
        done = subprocess.run([argv[0], "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return "", f"{argv[0]} --version: {e}"
    out = (done.stdout + done.stderr).strip()
    line = next((ln for ln in out.splitlines() if _XTRABACKUP.search(ln)), "")
    return (line, "") if line else ("", f"{argv[0]} --version printed no version: {out[:120]!r}")


# --- rules (pure) --------------------------------------------------------------------------------

def restore_rows(pf: Preflight) -> list[CheckResult]:
    """Check rows: each way a restore from S3 of this source into ``aurora_engine_version`` would be refused."""
    facts, ident, p = pf.restore, pf.source.identity, pf.params
    rows = [minor_version_row(ident.version, ident.version_text, p.aurora_engine_version)]
    if facts is None:
        return rows
    v = facts.variables
    percona = "percona" in facts.version_comment.lower() or facts.percona_tables
    rows.append(CheckResult("Oracle MySQL source (not Percona Server)", facts.version_comment or "—", "",
                            "fail" if percona else "pass",
                            f"AWS does not restore Percona Server for MySQL from S3 (its mysql schema holds "
                            f"{', '.join(facts.percona_tables) or 'tables Oracle MySQL lacks'}): migrate "
                            "logically (mysqldump/mydumper) or through an Oracle MySQL replica" if percona else ""))
    rows.append(_listed_row("compressed tables or pages", facts.compressed,
                            "Aurora MySQL has no compressed tables: ALTER TABLE … ROW_FORMAT=DYNAMIC "
                            "COMPRESSION='None' (then OPTIMIZE TABLE) on each before the backup of " + PHASE4))
    rows.append(_encryption_row(facts))
    rows.append(_listed_row("tablespaces outside the data directory", facts.outside,
                            f"restore from S3 refuses tables outside the data directory ({v.get('datadir')}): "
                            "move them in (ALTER TABLE … ENGINE=InnoDB rebuilds a table in the data directory "
                            "when it was made without DATA DIRECTORY; or copy the file in and ALTER TABLESPACE "
                            "… RENAME/IMPORT) before the backup"))
    rows.append(CheckResult.equal("InnoDB page size", v.get("innodb_page_size"), "16384",
                                  advice="restore from S3 takes only 16 KB pages (innodb_page_size is fixed "
                                         "at initialize): migrate logically"))
    data_files = [f for f in str(v.get("innodb_data_file_path") or "").split(";") if f]
    one = len(data_files) == 1 and data_files[0].startswith("ibdata1:")
    rows.append(CheckResult("one system tablespace file (ibdata1)", v.get("innodb_data_file_path") or "—",
                            "ibdata1:…", "pass" if one else "fail", "" if one else
                            "restore from S3 takes one data file named ibdata1 only: migrate logically"))
    groups = v.get("innodb_log_files_in_group")
    if groups is not None:      # gone from MySQL 8.0.30 (innodb_redo_log_capacity)
        rows.append(CheckResult.equal("innodb_log_files_in_group", groups, "2",
                                      advice="set innodb_log_files_in_group=2 in my.cnf and restart the source "
                                             "before the backup (AWS requires the default)"))
    rows.append(_partial_row(p))
    rows.append(xtrabackup_row(ident.version, facts))
    return rows


def minor_version_row(source: tuple[int, int, int], source_text: str, engine_version: str) -> CheckResult:
    """The source's MySQL version against the MySQL version of the planned Aurora engine version."""
    item, engine = "MySQL version: source ≤ Aurora engine", parse_engine_version(engine_version)
    if engine is None:
        return CheckResult(item, source_text, engine_version, "fail",
                           "aurora_engine_version is not <major>.mysql_aurora.<x.y.z>, like 8.0.mysql_aurora.3.08.0")
    fits = oldest_engine_for(source)
    fix = (f"set aurora_engine_version: {fits.engine_version} (MySQL {fits.mysql_text}) is the oldest that fits"
           if fits else f"no Aurora release of the table ({RELEASE_NOTES}) is MySQL {source_text} or newer yet: "
                        "wait for one, or migrate logically")
    if engine.mysql is None:
        return CheckResult(item, f"MySQL {source_text}", engine.describe(), "warn",
                           f"Aurora {version_text(engine.aurora)} is not in the runbook's table of releases "
                           f"({RELEASE_NOTES}): check its MySQL version by hand; {fix}")
    if engine.mysql[:2] != source[:2]:
        return CheckResult(item, f"MySQL {source_text}", engine.describe(), "info",
                           "different major versions: the versions section judges them")
    if source > engine.mysql:
        return CheckResult(item, f"MySQL {source_text}", engine.describe(), "fail",
                           f"AWS restores no backup of a newer MySQL minor version: MySQL {source_text} into "
                           f"Aurora with MySQL {engine.mysql_text} is refused; {fix}")
    if source[:2] == (8, 0) and source[2] in (11, 13, 15) and engine.aurora >= (3, 5, 0):
        return CheckResult(item, f"MySQL {source_text}", engine.describe(), "fail",
                           f"AWS does not migrate MySQL {source_text} into Aurora 3.05 or later: upgrade the "
                           "source to MySQL 8.0.28 first, or choose Aurora 3.04")
    return CheckResult(item, f"MySQL {source_text}", engine.describe(), "pass")


def _listed_row(item: str, found: tuple[str, ...], advice: str) -> CheckResult:
    shown = f"{len(found)}: " + ", ".join(found[:6]) + (", …" if len(found) > 6 else "") if found else "none"
    return CheckResult(item, shown, "", "fail" if found else "pass", advice if found else "")


def _encryption_row(facts: RestoreFacts) -> CheckResult:
    v = facts.variables
    on = [f"{n}=ON" for n in ("default_table_encryption", "innodb_redo_log_encrypt", "innodb_undo_log_encrypt")
          if str(v.get(n) or "").upper() in ("ON", "1")]
    found = facts.encrypted + tuple(on)
    return _listed_row("encryption at rest (InnoDB)", found,
                       "AWS restores no encrypted source database: decrypt before the backup (ALTER TABLE … "
                       "ENCRYPTION='N', ALTER TABLESPACE … ENCRYPTION='N', and the *_encrypt settings OFF); "
                       "the restored cluster is encrypted by StorageEncrypted instead")


def _partial_row(p: RunbookParameters) -> CheckResult:
    words = shlex.split(p.xtrabackup_command)
    partial = [w for w in words if w.split("=", 1)[0] in PARTIAL_OPTIONS]
    return CheckResult("full backup (no partial-backup options)", p.xtrabackup_command, "full",
                       "fail" if partial else "pass",
                       f"xtrabackup_command has {', '.join(partial)}: AWS restores no partial backup; remove "
                       "them" if partial else "")


def xtrabackup_row(source: tuple[int, int, int], facts: RestoreFacts) -> CheckResult:
    """The XtraBackup version against the source: 2.4 for 5.7; 8.0.x ≥ the server for 8.0 (8.0.35+ backs
    up 8.0.34+ only); 8.4 for 8.4."""
    item, src = "Percona XtraBackup for the source", ".".join(map(str, source))
    if not facts.xtrabackup:
        return CheckResult(item, f"MySQL {src}", facts.xtrabackup_problem or "not run", "info",
                           f"checked where XtraBackup runs ({PHASE4}): 2.4 for 5.7, 8.0 (≥ the server's "
                           "version) for 8.0, 8.4 for 8.4")
    found = _XTRABACKUP.search(facts.xtrabackup)
    pxb = parse_version(found[1]) if found else (0, 0, 0)
    shown = f"XtraBackup {'.'.join(map(str, pxb))}"
    if source[:2] == (5, 7):
        ok, need = pxb[:2] == (2, 4), "Percona XtraBackup 2.4 (AWS: 2.4 for MySQL 5.7)"
    elif source[:2] == (8, 0):
        ok = pxb[:2] == (8, 0) and pxb >= source and (source >= (8, 0, 34) or pxb < (8, 0, 35))
        need = (f"Percona XtraBackup 8.0 at least {src} (a server newer than XtraBackup stops the backup)"
                if source >= (8, 0, 34) else f"Percona XtraBackup 8.0.{source[2]} to 8.0.34 (8.0.35 and "
                "later back up 8.0.34 and later only)")
    else:
        ok = pxb[:2] == source[:2]
        need = f"Percona XtraBackup {source[0]}.{source[1]}.x (its major must be the server's)"
    return CheckResult(item, f"MySQL {src}", shown, "pass" if ok else "fail", "" if ok else f"install {need}")
