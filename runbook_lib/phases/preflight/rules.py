"""Phase 1's rules: the facts :func:`runbook_lib.phases.preflight.steps.gather` read -> check rows, by section.

Pure: :func:`evaluate` reads only the :class:`~runbook_lib.phases.preflight.steps.Preflight` value it is given
and never touches a server, so each rule is unit-tested on made-up facts.  Severity: ``fail`` breaks
the plan (unreachable, version mismatch, colliding offsets in the parameters, same
server_id/uuid...); ``warn`` is what a later phase sets (its advice names the phase) or what a
person must carry over by hand; ``info`` is context.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from runbook_lib.core.display import CheckResult
from runbook_lib.phases.preflight.restore_s3 import restore_rows
from runbook_lib.phases.source_binlog.steps import Wanted, plan_settings, retention_seconds

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.phases.preflight.steps import Preflight, ServerFacts

#: Binary logs must outlive backup + restore by this factor (a slow upload, a retried restore).
RETENTION_MARGIN = 2.0
#: The Aurora MySQL generation for each source major version, and what to pick.
AURORA_FOR_MAJOR = {"5.7": (2, "Aurora MySQL 2.11 or 2.12 (5.7.mysql_aurora.2.12.x)"),
                    "8.0": (3, "Aurora MySQL 3 (8.0.mysql_aurora.3.x)"),
                    "8.4": (8, "Aurora MySQL 8.4 (8.4.mysql_aurora.8.4.x)")}
#: Source 8.0 with Aurora 8.4: what the fallback leg means (MySQL manual, "Replication Compatibility Between
#: MySQL Versions": replication from a newer source to an older replica "is possible, but is generally not
#: supported"), and how Aurora gets there (a restore from S3 needs the source's major version).
FALLBACK_84_TO_80 = (
    "source 8.0 -> Aurora 8.4: the fallback leg (Aurora 8.4 -> source 8.0) replicates from a newer to an older "
    "server, which MySQL calls possible but generally not supported (Replication Compatibility Between MySQL "
    "Versions): binary log features and SQL that 8.0 lacks stop the source's replica. Restore into Aurora 3 "
    "(a restore from S3 needs MySQL 8.0), upgrade it to 8.4 in place, keep Aurora's writes to what 8.0 "
    "understands until the fallback window ends, and rehearse the fallback; or upgrade the source to 8.4 first")
#: First Aurora version whose external channel can use TLS (mysql.rds_set_binlog_source_ssl; AWS,
#: "Configuring, starting, and stopping binary log (binlog) replication").
TLS_PROCEDURE_SINCE = (3, 6)
SECTIONS = {"reachability": "both ends reachable", "versions": "versions", "identity": "server identities",
            "binlog": "binary log and GTIDs", "auto_increment": "auto-increment",
            "retention": "binlog retention", "schema": "tables and routines",
            "restore_gaps": "what a restore from S3 does not carry", "size": "data size",
            "restore_s3": "what a restore from S3 refuses"}
_AURORA_WANTED = {"log_bin": ("ON", "1"), "binlog_format": ("ROW",), "gtid_mode": ("ON",),
                  "enforce_gtid_consistency": ("ON",), "log_bin_trust_function_creators": ("ON", "1")}
_ENGINE_VERSION = re.compile(r"^(\d+\.\d+)\.mysql_aurora\.(\d+)\.(\d+)\.(\d+)$")
PHASE2 = "phase 2 (02_source_binlog)"
PHASE3 = "phase 3 (03_parameter_group)"
PHASE4 = "phase 4 (04_backup_restore)"


def evaluate(pf: Preflight) -> dict[str, list[CheckResult]]:
    """Check rows by section (keys of :data:`SECTIONS`).  Pure: reads only ``pf``."""
    return {"reachability": _reachability(pf), "versions": _versions(pf), "identity": _identity(pf),
            "binlog": _binlog(pf), "auto_increment": _auto_increment(pf), "retention": _retention(pf),
            "schema": _schema(pf), "restore_gaps": _restore_gaps(pf), "size": _size(pf),
            "restore_s3": restore_rows(pf)}


def _listed(items: tuple[str, ...], limit: int = 6) -> str:
    if not items:
        return "none"
    more = f", … (+{len(items) - limit})" if len(items) > limit else ""
    return f"{len(items)}: " + ", ".join(items[:limit]) + more


def _reachability(pf: Preflight) -> list[CheckResult]:
    s, aws, p = pf.source, pf.aws, pf.params
    what = s.identity.describe().split(",")[0]
    rows = [CheckResult("source reachable", f"{s.address} ({what})", "", "pass")]
    api = f"{aws.region} via {aws.endpoint}"
    if aws.problem:
        rows.append(CheckResult("AWS API", "", api, "fail", f"{aws.problem}; check aws_region, "
                                "aws_endpoint_url, aws_profile and this machine's credentials"))
        return rows
    rows.append(CheckResult("AWS API", "", f"{api}, account {aws.account}", "pass"))
    if aws.cluster is None:
        rows.append(CheckResult("Aurora cluster", "", f"{p.aurora_cluster_id}: does not exist yet", "info",
                                f"restored in {PHASE4}; the Aurora columns below fill in from then on"))
        return rows
    c = aws.cluster
    ready = c["status"] == "available"
    rows.append(CheckResult("Aurora cluster", "", f"{p.aurora_cluster_id}: {c['status']}, writer "
                            f"{c['writer']}, endpoint {c['endpoint']}", "pass" if ready else "warn",
                            "" if ready else "wait until the cluster is available"))
    if pf.aurora is None:
        rows.append(CheckResult("Aurora writer reachable", "", f"{p.aurora_admin_user}@{p.aurora_host}:"
                                f"{p.aurora_port}", "fail", pf.aurora_problem))
    else:
        rows.append(CheckResult("Aurora writer reachable", "", pf.aurora.address, "pass"))
    return rows


def _versions(pf: Preflight) -> list[CheckResult]:
    p, ident = pf.params, pf.source.identity
    major, m, planned = ident.major, _ENGINE_VERSION.match(p.aurora_engine_version), p.aurora_engine_version
    status, advice = "pass", ""
    if m is None:
        status = "fail"
        advice = "aurora_engine_version is not <major>.mysql_aurora.<x.y.z>, like 8.0.mysql_aurora.3.08.0"
    elif major not in AURORA_FOR_MAJOR:
        rehearsal = urlparse(p.aws_endpoint_url).hostname in ("127.0.0.1", "localhost", "::1")
        status = "warn" if rehearsal else "fail"
        advice = (f"{'lab rehearsal only: ' if rehearsal else ''}MySQL {major} has no Aurora MySQL "
                  "counterpart (Aurora MySQL 2 is MySQL 5.7, 3 is MySQL 8.0, 8.4 is 8.4); a restore from S3 needs the "
                  "same major version")
    elif (major, m.group(1)) == ("8.0", "8.4"):
        status, advice = "warn", FALLBACK_84_TO_80
    elif (m.group(1), int(m.group(2))) != (major, AURORA_FOR_MAJOR[major][0]):
        status = "fail"
        advice = f"MySQL {major} needs {AURORA_FOR_MAJOR[major][1]}: fix aurora_engine_version"
    elif int(m.group(2)) == 2 and int(m.group(3)) < 11:
        status = "warn"
        advice = f"prefer {AURORA_FOR_MAJOR[major][1]}: older releases keep binlogs at most 168 h"
    if m is not None:
        planned += f" (Aurora MySQL {m.group(1) if m.group(2) == '8' else m.group(2)}, MySQL {m.group(1)})"
    rows = [CheckResult("Aurora version for the source", f"MySQL {ident.version_text}", planned, status,
                        advice)]
    if m is not None:
        tls = (int(m.group(2)), int(m.group(3))) >= TLS_PROCEDURE_SINCE
        rows.append(CheckResult(
            "TLS on Aurora's replication channel", "", "mysql.rds_set_binlog_source_ssl" if tls else "none",
            "pass" if tls else "warn", "" if tls else
            "Aurora before 3.06 cannot encrypt its channel from the source (the ssl_encryption argument is not "
            "implemented): phase 05 uses a mysql_native_password account without TLS there, so keep the "
            "network private (VPN), or choose Aurora 3.06 or later"))
    if pf.aurora is not None:
        a = pf.aurora.identity
        newer = (major, a.major) == ("8.0", "8.4")
        rows.append(CheckResult("same major version (running cluster)", major, f"{a.major} "
                                f"(Aurora {a.aurora_version or '?'})",
                                "pass" if a.major == major else "warn" if newer else "fail",
                                "" if a.major == major else FALLBACK_84_TO_80 if newer else
                                "bi-directional replication needs equal major "
                                "versions: restore into a cluster of the source's major version"))
    return rows


def _identity(pf: Preflight) -> list[CheckResult]:
    s, a, p = pf.source, pf.aurora, pf.params
    current = s.var("server_id")
    if a is not None and a.var("server_id") in (current, str(p.source_server_id)):
        sid = CheckResult("server_id", current, a.var("server_id"), "fail", "both sides would have the same "
                          "server_id and ignore each other's events: choose another source_server_id")
    elif current != str(p.source_server_id):
        sid = CheckResult("server_id", current, a.var("server_id") if a else "—", "warn",
                          f"{PHASE2} sets server_id = {p.source_server_id} (source_server_id)")
    else:
        sid = CheckResult("server_id", current, a.var("server_id") if a else "—", "pass")
    if a is None:
        uuid = CheckResult("server_uuid", s.var("server_uuid"), "—", "info", f"compared after {PHASE4}")
    elif a.var("server_uuid") == s.var("server_uuid"):
        uuid = CheckResult("server_uuid", s.var("server_uuid"), a.var("server_uuid"), "fail",
                           "a copied auto.cnf: remove it on one side and restart that server (new uuid)")
    else:
        uuid = CheckResult("server_uuid", s.var("server_uuid"), a.var("server_uuid"), "pass")
    return [sid, uuid]


def _binlog(pf: Preflight) -> list[CheckResult]:
    """The source's side as phase 2 would plan it; Aurora's against what phase 3's group sets."""
    s, a = pf.source, pf.aurora
    plan = plan_settings(s.identity, s.variables, Wanted.from_params(pf.params))
    planned = {x.name: x for x in plan.settings}
    stored = len(pf.inventory.routines + pf.inventory.triggers)
    rows = []
    for name in ("log_bin", "binlog_format", "sync_binlog", "gtid_mode", "enforce_gtid_consistency",
                 "log_bin_trust_function_creators"):
        setting = planned[name]
        advice = [] if setting.ok else [f"{PHASE2} sets {setting.wanted} ({setting.how})"]
        if name == "log_bin_trust_function_creators":
            advice = [f"{stored} routine(s)/trigger(s): {text}" for text in advice] if stored else []
        if a is not None and name in _AURORA_WANTED and a.var(name).upper() not in _AURORA_WANTED[name]:
            advice.append(f"{PHASE3} sets it in the DB cluster parameter group")
        rows.append(CheckResult(name, setting.current, a.var(name) if a else "—",
                                "warn" if advice else "pass", "; ".join(advice)))
    return rows


def _increments(f: ServerFacts) -> str:
    return f"increment {f.var('auto_increment_increment')}, offset {f.var('auto_increment_offset')}"


def _auto_increment(pf: Preflight) -> list[CheckResult]:
    p, s, a = pf.params, pf.source, pf.aurora
    inc, so, ao = p.auto_increment_increment, p.source_auto_increment_offset, p.aurora_auto_increment_offset
    problems = ([f"auto_increment_increment {inc} < 2"] if inc < 2 else []) + \
        ([f"both offsets are {so}"] if so == ao else []) + \
        [f"offset {o} is not within 1..{inc}" for o in (so, ao) if not 1 <= o <= inc]
    planned = CheckResult("auto-increment (parameters)", f"increment {inc}, offset {so}",
                          f"increment {inc}, offset {ao}", "fail" if problems else "pass",
                          "; ".join(problems) + ": ids inserted on both sides would collide and stop "
                          "replication (e.g. increment 2, offsets 2 and 1)" if problems else "")
    advice = []
    if _increments(s) != f"increment {inc}, offset {so}":
        advice.append(f"{PHASE2} sets increment {inc}, offset {so} on the source")
    if a is not None and _increments(a) != f"increment {inc}, offset {ao}":
        advice.append(f"{PHASE3} sets increment {inc}, offset {ao} on Aurora")
    current = CheckResult("auto-increment (now)", _increments(s), _increments(a) if a else "—",
                          "warn" if advice else "pass", "; ".join(advice))
    return [planned, current]


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g} h"


def _retention(pf: Preflight) -> list[CheckResult]:
    p, s = pf.params, pf.source
    needed = p.expected_restore_hours * 3600 * RETENTION_MARGIN
    need_text = (f"≥ {_hours(needed)} ({RETENTION_MARGIN:g} × expected_restore_hours "
                 f"{p.expected_restore_hours:g} h)")
    current = retention_seconds(s.variables)
    var = "binlog_expire_logs_seconds" if s.variables.get("binlog_expire_logs_seconds") is not None \
        else "expire_logs_days"
    shown = f"{_hours(current)} ({var}={s.var(var)})" if current else f"never purged ({var}={s.var(var)})"
    if current == 0 or current >= needed:
        now = CheckResult("binlog retention (now)", shown, need_text, "pass",
                          "" if current else "binlogs are never purged: watch the source's disk")
    else:
        now = CheckResult("binlog retention (now)", shown, need_text, "warn",
                          f"binlogs would be purged before the restore is done: {PHASE2} sets "
                          f"{p.source_binlog_expire_seconds} s ({_hours(p.source_binlog_expire_seconds)})")
    planned_s = p.source_binlog_expire_seconds
    if planned_s == 0 or planned_s >= needed:
        plan = CheckResult("binlog retention (parameters)", f"{planned_s} s", need_text, "pass")
    elif planned_s >= p.expected_restore_hours * 3600:
        plan = CheckResult("binlog retention (parameters)", f"{planned_s} s", need_text, "warn",
                           "little margin over expected_restore_hours: raise source_binlog_expire_seconds")
    else:
        plan = CheckResult("binlog retention (parameters)", f"{planned_s} s", need_text, "fail",
                           "shorter than the backup and restore: raise source_binlog_expire_seconds")
    return [now, plan]


def _schema(pf: Preflight) -> list[CheckResult]:
    inv = pf.inventory
    routines = tuple(r for r in inv.routines if not r.startswith("EVENT "))
    events = tuple(r for r in inv.routines if r.startswith("EVENT "))
    definers = ", ".join(inv.definers)
    rows = [
        CheckResult("tables without a primary key", _listed(inv.tables_without_pk), "",
                    "warn" if inv.tables_without_pk else "pass",
                    "row-based replication scans such a table for every changed row: add a primary key "
                    "before the migration" if inv.tables_without_pk else ""),
        CheckResult("non-InnoDB tables", _listed(inv.non_innodb_tables), "", "fail" if inv.non_innodb_tables
                    else "pass", "Aurora keeps only InnoDB tables: ALTER TABLE … ENGINE=InnoDB before the "
                    f"backup of {PHASE4}" if inv.non_innodb_tables else ""),
        CheckResult("functions and procedures", _listed(routines), "", "warn" if routines else "pass",
                    f"a restore from S3 does not carry them: 05_replication brings them to Aurora by "
                    "replication (step 'routines'; by hand before MySQL 8.0.29), definers "
                    f"{definers}" if routines else ""),
        CheckResult("triggers", _listed(inv.triggers), "", "warn" if inv.triggers else "pass",
                    f"carried with their tables, but they run as their definers ({definers}), accounts a "
                    "restore does not carry: create those on Aurora" if inv.triggers else ""),
    ]
    if events:
        rows.append(CheckResult("events", _listed(events), "", "warn", "recreate them on Aurora and keep "
                                "them enabled on one side only, or they run twice"))
    return rows


def _restore_gaps(pf: Preflight) -> list[CheckResult]:
    s, a, inv = pf.source, pf.aurora, pf.inventory
    rows = [CheckResult("accounts", _listed(inv.accounts), "", "warn" if inv.accounts else "pass",
                        f"a restore from S3 does not carry accounts: recreate them on Aurora after {PHASE4} "
                        "(SHOW CREATE USER, SHOW GRANTS; Aurora has no SUPER)" if inv.accounts else "")]
    tz = s.var("time_zone")
    loaded = f"tables loaded ({inv.time_zone_names} zones)" if inv.time_zone_names else "tables not loaded"
    named = tz.upper() != "SYSTEM" and not re.fullmatch(r"[+-]\d{1,2}:\d{2}", tz)
    rows.append(CheckResult("time zones", f"time_zone={tz} (system {s.var('system_time_zone')}); {loaded}",
                            a.var("time_zone") if a else "—", "warn" if named else "info",
                            f"add time_zone={tz} to the DB cluster parameter group of {PHASE3} before the "
                            "restore: it does not carry the source's time zone settings" if named else
                            "a restore from S3 does not carry the time zone tables; Aurora has its own "
                            "loaded: named zones (CONVERT_TZ) may give results the source does not"))
    server_cs = (s.var("character_set_server"), s.var("collation_server"))
    other = tuple(f"{n} ({cs}/{co})" for n, cs, co in inv.schema_charsets if (cs, co) != server_cs)
    cs_text = f"server {server_cs[0]}/{server_cs[1]}; other schemas: {_listed(other)}"
    if a is not None and (a.var("character_set_server"), a.var("collation_server")) != server_cs:
        rows.append(CheckResult("character sets", cs_text, f"{a.var('character_set_server')}/"
                                f"{a.var('collation_server')}", "warn", "add the source's "
                                "character_set_server and collation_server to the DB cluster parameter "
                                f"group of {PHASE3}"))
    else:
        rows.append(CheckResult("character sets", cs_text, f"{a.var('character_set_server')}/"
                                f"{a.var('collation_server')}" if a else "—", "info",
                                "schema defaults travel with the data; Aurora's server defaults come from "
                                f"the DB cluster parameter group of {PHASE3}: add the source's there if they "
                                "differ"))
    return rows


def _bytes(n: int) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 2**10:.0f} KiB"


def _size(pf: Preflight) -> list[CheckResult]:
    inv, p = pf.inventory, pf.params
    total = inv.data_bytes + inv.index_bytes
    text = (f"{_bytes(total)} (data {_bytes(inv.data_bytes)} + indexes {_bytes(inv.index_bytes)})"
            f" in {inv.tables} tables, ≈ {inv.rows_estimate:,} rows")
    return [CheckResult("data size", text, "", "info", "information_schema estimates; the backup, upload "
                        "and restore of this must fit in expected_restore_hours "
                        f"({p.expected_restore_hours:g} h)")]
