"""Aurora MySQL DB cluster parameter groups as the lab endpoint serves them.

The engine defaults of families ``aurora-mysql5.7`` (Aurora 2), ``aurora-mysql8.0`` (Aurora 3)
and ``aurora-mysql8.4`` (Aurora MySQL 8.4: engine versions ``8.4.mysql_aurora.8.4.x``, the same
Aurora 3 parameters, ``require_secure_transport`` ON by default -- AWS, "Aurora MySQL version 8.4
compatible with MySQL 8.4" and "Comparing Aurora MySQL version 3 and Aurora MySQL version 8.4"), how AWS validates a change to them, and how a group's values drive the lab's
Aurora stand-in (a MySQL 9.7 ``mysqld``).  Pure data and functions: no server, no moto.

Facts, from the Aurora User Guide ("Aurora MySQL configuration parameters", cluster-level
table; "Using GTID-based replication") and the RDS API reference
(ModifyDBClusterParameterGroup):

* ``binlog_format`` defaults to ``OFF``: Aurora writes no binary log.  ``ROW``, ``STATEMENT``
  or ``MIXED`` turn ``log-bin`` on (``log-bin`` itself is not a parameter).
* ``gtid-mode`` is how the console and the API spell ``gtid_mode``: OFF, OFF_PERMISSIVE (the
  default), ON_PERMISSIVE, ON; ``enforce_gtid_consistency``: OFF (default), ON, WARN.  AWS
  tells you to restart the cluster after changing them, so they are static here.
* ``binlog_row_image`` is not modifiable.  ``sync_binlog`` and ``replica_parallel_workers``
  are not cluster parameters (Aurora manages durability; the latter is instance-level).
* ``log_bin_trust_function_creators``: AWS lists it with instance parameters; the AWS blog this
  runbook follows sets it in the cluster group, so the lab accepts it there too.
* ``binlog_checksum`` reports no value unless set (Aurora then uses CRC32).  A parameter with
  no ``default`` here has no ParameterValue, as AWS shows "engine default".
* ``immediate`` applies only to dynamic parameters; at most 20 parameters per request.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

FAMILIES = ("aurora-mysql5.7", "aurora-mysql8.0", "aurora-mysql8.4")
V2, V3, BOTH = ("aurora-mysql5.7",), ("aurora-mysql8.0", "aurora-mysql8.4"), FAMILIES   # V3: Aurora 3 and later
V84 = ("aurora-mysql8.4",)
MAX_PARAMETERS_PER_MODIFY = 20
BINLOG_BASENAME = "mysql-bin-changelog"       # Aurora's binary log file names
_CHARSETS = ("armscii8,ascii,big5,binary,cp1250,cp1251,cp1256,cp1257,cp850,cp852,cp866,cp932,dec8,"
             "eucjpms,euckr,gb18030,gb2312,gbk,geostd8,greek,hebrew,hp8,keybcs2,koi8r,koi8u,latin1,"
             "latin2,latin5,latin7,macce,macroman,sjis,swe7,tis620,ucs2,ujis,utf16,utf16le,utf32,"
             "utf8,utf8mb3,utf8mb4")


@dataclass(frozen=True)
class ClusterParam:
    """One parameter of a DB cluster parameter group family."""

    name: str
    description: str
    families: tuple[str, ...] = BOTH
    apply_type: str = "dynamic"          # dynamic | static
    data_type: str = "string"
    allowed: str | None = None           # "A,B,C" or "lo-hi"; None: any value
    default: str | None = None           # None: "engine default" (no ParameterValue)
    modifiable: bool = True
    mysqld: str | None = None            # the stand-in's option/variable this drives

    def problem(self, value: str) -> str | None:
        """Why ``value`` is not allowed (AWS's wording), or None."""
        if self.allowed is None:
            return None
        rng = re.fullmatch(r"(-?\d+)-(\d+)", self.allowed)
        if rng:
            ok = re.fullmatch(r"-?\d+", value.strip()) and int(rng[1]) <= int(value) <= int(rng[2])
        else:
            ok = value.strip().upper() in {a.upper() for a in self.allowed.split(",")}
        if ok:
            return None
        return f"Invalid parameter value: {value} for: {self.name} allowed values are: {self.allowed}"

    def canonical(self, value: str) -> str:
        """``value`` spelled as in AllowedValues (``on`` -> ``ON``)."""
        for allowed in (self.allowed or "").split(","):
            if allowed.upper() == value.strip().upper():
                return allowed
        return value.strip()

    def as_api(self, value: str | None = None, source: str = "engine-default",
               apply_method: str = "pending-reboot") -> dict:
        """The ``Parameter`` structure of DescribeDBClusterParameters and friends."""
        out = {"ParameterName": self.name, "Description": self.description, "Source": source,
               "ApplyType": self.apply_type, "DataType": self.data_type, "IsModifiable": self.modifiable,
               "ApplyMethod": apply_method, "SupportedEngineModes": ["provisioned"]}
        shown = value if value is not None else self.default
        if shown is not None:
            out["ParameterValue"] = shown
        if self.allowed is not None:
            out["AllowedValues"] = self.allowed
        return out


def _p(name, description, families=BOTH, **kw) -> ClusterParam:
    return ClusterParam(name, description, families, **kw)


_BOOL = {"data_type": "boolean", "allowed": "0,1"}
PARAMETERS: tuple[ClusterParam, ...] = (
    # -- what the runbook changes (and the stand-in honours) ------------------------------
    _p("binlog_format", "What form of binary logging the source will use; OFF turns the binary log off.",
       apply_type="static", allowed="ROW,STATEMENT,MIXED,OFF", default="OFF"),
    _p("gtid-mode", "Whether transactions get global transaction identifiers, and which ones the "
       "server accepts from replication.", apply_type="static",
       allowed="OFF,OFF_PERMISSIVE,ON_PERMISSIVE,ON", default="OFF_PERMISSIVE", mysqld="gtid_mode"),
    _p("enforce_gtid_consistency", "Prevents execution of statements that cannot be logged in a "
       "transactionally safe manner.", apply_type="static", allowed="OFF,ON,WARN", default="OFF",
       mysqld="enforce_gtid_consistency"),
    _p("log_bin_trust_function_creators", "Whether stored function creators are trusted not to create "
       "functions that write unsafe events to the binary log.", **_BOOL,
       mysqld="log_bin_trust_function_creators"),
    _p("auto_increment_increment", "Interval between successive AUTO_INCREMENT column values.",
       data_type="integer", allowed="1-65535", mysqld="auto_increment_increment"),
    _p("auto_increment_offset", "Starting point of AUTO_INCREMENT column values.",
       data_type="integer", allowed="1-65535", mysqld="auto_increment_offset"),
    _p("binlog_checksum", "Checksum algorithm for binary log events (CRC32 when not set).",
       allowed="NONE,CRC32", mysqld="binlog_checksum"),
    _p("binlog_row_image", "Which columns row-based binary logging writes.", allowed="full,minimal,noblob",
       modifiable=False),
    _p("binlog_rows_query_log_events", "Writes the original statement as an informational row event.",
       **_BOOL, mysqld="binlog_rows_query_log_events"),
    _p("binlog_transaction_compression", "Compresses transaction payloads in the binary log.",
       V3, **_BOOL, mysqld="binlog_transaction_compression"),
    _p("binlog_group_commit_sync_delay", "Microseconds to wait before syncing the binary log.", V3,
       data_type="integer", allowed="0-1000000", mysqld="binlog_group_commit_sync_delay"),
    _p("character_set_server", "The server's default character set.", allowed=_CHARSETS,
       mysqld="character_set_server"),
    _p("time_zone", "The server's time zone (UTC when not set).",
       allowed="UTC,US/Alaska,US/Central,US/Eastern,US/Hawaii,US/Mountain,US/Pacific,Europe/London,"
               "Europe/Berlin,Europe/Paris,Europe/Madrid,Asia/Tokyo,Asia/Seoul,Asia/Singapore,"
               "Asia/Kolkata,Australia/Sydney,America/Sao_Paulo,America/Bogota,America/Mexico_City"),
    _p("server_audit_logging", "Enables Advanced Auditing.", **_BOOL, default="0"),
    _p("aurora_enable_repl_bin_log_filtering", "Omits binary log data from messages to Aurora Replicas.",
       V2, **_BOOL, default="1"),
    _p("aurora_enhanced_binlog", "Enhanced binary log.", V3, apply_type="static", **_BOOL, default="0"),
    _p("binlog_backup", "Includes binary logs in backups (off with enhanced binlog).", V3,
       apply_type="static", **_BOOL, default="1"),
    _p("binlog_replication_globaldb", "Binary log replication of a global database.", V3,
       apply_type="static", **_BOOL, default="1"),
    _p("lower_case_table_names", "Table names stored in lowercase (Aurora 3: at cluster creation only).",
       apply_type="static", allowed="0,1"),
    _p("read_only", "No updates except from replica threads.", **_BOOL),
    _p("require_secure_transport", "Client connections must use TLS.", ("aurora-mysql5.7", "aurora-mysql8.0"),
       **_BOOL),
    _p("require_secure_transport", "Client connections must use TLS (ON by default on Aurora MySQL 8.4).",
       V84, **_BOOL, default="1"),
)

# Further cluster-level names from the same AWS table: accepted with any value, not wired.
_PASSIVE = {
    BOTH: ("aurora_binlog_replication_max_yield_seconds aurora_enable_staggered_replica_restart "
           "aurora_mask_password_hashes_type aws_default_lambda_role aws_default_s3_role "
           "character_set_client character_set_connection character_set_database character_set_filesystem "
           "character_set_results collation_connection collation_server completion_type init_connect "
           "innodb_adaptive_hash_index innodb_cmp_per_index_enabled innodb_commit_concurrency "
           "innodb_deadlock_detect innodb_default_row_format innodb_file_per_table "
           "innodb_ft_num_word_optimize innodb_online_alter_log_max_size innodb_optimize_fulltext_only "
           "innodb_print_all_deadlocks innodb_purge_batch_size innodb_rollback_on_timeout "
           "innodb_rollback_segments innodb_spin_wait_delay "
           "innodb_strict_mode innodb_sync_spin_loops innodb_table_locks key_buffer_size lc_time_names "
           "server_audit_events server_audit_excl_users server_audit_incl_users tls_version"),
    V2: ("aurora_binlog_read_buffer_size aurora_binlog_use_large_read_buffer aurora_disable_hash_join "
         "aurora_enable_replica_log_compression aurora_load_from_s3_role aurora_select_into_s3_role "
         "innodb_support_xa innodb_undo_logs internal_tmp_disk_storage_engine master_verify_checksum "
         "query_cache_type slave-skip-errors sync_frm"),
    V3: ("binlog_group_commit_sync_no_delay_count binlog_row_metadata binlog_row_value_options "
         "binlog_transaction_compression_level_zstd binlog_transaction_dependency_history_size "
         "binlog_transaction_dependency_tracking event_scheduler internal_tmp_mem_storage_engine "
         "replica_preserve_commit_order replica_transaction_retries rpl_read_size source_verify_checksum"),
}
_PASSIVE_STATIC = {
    BOTH: ("character-set-client-handshake skip-character-set-client-handshake innodb_autoinc_lock_mode "
           "innodb_ft_max_token_size innodb_ft_min_token_size innodb_ft_sort_pll_degree innodb_purge_threads "
           "innodb_sync_array_size"),
    V2: "master-info-repository",
    V3: ("binlog-do-db binlog-ignore-db relay-log-space-limit replicate-do-db replicate-do-table "
         "replicate-ignore-db replicate-ignore-table replicate-wild-do-table replicate-wild-ignore-table"),
}
_NOT_MODIFIABLE = {BOTH: "default_storage_engine innodb_data_home_dir innodb_page_size innodb_undo_directory "
                         "server_id skip_name_resolve",
                   V2: "innodb_checksums innodb_undo_tablespaces", V3: "partial_revokes"}


def _catalog() -> dict[str, dict[str, ClusterParam]]:
    out: dict[str, dict[str, ClusterParam]] = {f: {} for f in FAMILIES}
    extra = []
    for table, kw in ((_PASSIVE, {}), (_PASSIVE_STATIC, {"apply_type": "static"}),
                      (_NOT_MODIFIABLE, {"apply_type": "static", "modifiable": False})):
        extra += [(fams, n, kw) for fams, names in table.items() for n in names.split()]
    params = list(PARAMETERS) + [_p(n, "", fams, **kw) for fams, n, kw in extra]
    for param in sorted(params, key=lambda p: p.name):
        for family in param.families:
            out[family][param.name] = param
    return out


CATALOG = _catalog()


def defaults(family: str) -> dict[str, ClusterParam]:
    """The parameters of ``family`` by name (KeyError for a family the lab does not know)."""
    return CATALOG[family]


# -- engine versions -------------------------------------------------------------------
#: (EngineVersion, MySQL version it is compatible with): a small table, newest last.
ENGINE_VERSIONS = (
    ("5.7.mysql_aurora.2.11.2", "5.7.12"), ("5.7.mysql_aurora.2.11.5", "5.7.12"),
    ("5.7.mysql_aurora.2.12.0", "5.7.40"), ("5.7.mysql_aurora.2.12.1", "5.7.40"),
    ("8.0.mysql_aurora.3.04.0", "8.0.28"), ("8.0.mysql_aurora.3.04.1", "8.0.28"),
    ("8.0.mysql_aurora.3.05.2", "8.0.32"), ("8.0.mysql_aurora.3.06.0", "8.0.34"),
    ("8.0.mysql_aurora.3.07.1", "8.0.36"), ("8.0.mysql_aurora.3.08.0", "8.0.39"),
    ("8.4.mysql_aurora.8.4.7", "8.4.7"),
)
#: The default engine version of each Aurora major version the lab's stand-in can play (``--aurora``).
ENGINE_VERSION_FOR = {"3": "8.0.mysql_aurora.3.08.0", "8.4": "8.4.mysql_aurora.8.4.7"}
DEFAULT_ENGINE_VERSION = "8.0.mysql_aurora.3.08.0"


def family_of(engine_version: str) -> str:
    return f"aurora-mysql{engine_version.split('.mysql_aurora.')[0]}"


def aurora_version(engine_version: str) -> str:
    """``'8.0.mysql_aurora.3.08.0'`` -> ``'3.08.0'``."""
    return engine_version.rsplit("mysql_aurora.", 1)[-1]


def engine_version_api(engine_version: str, mysql_version: str) -> dict:
    """One ``DBEngineVersion`` structure of DescribeDBEngineVersions."""
    return {"Engine": "aurora-mysql", "EngineVersion": engine_version,
            "MajorEngineVersion": engine_version.split(".mysql_aurora.")[0],
            "DBParameterGroupFamily": family_of(engine_version), "DBEngineDescription": "Aurora MySQL",
            "DBEngineVersionDescription": f"Aurora MySQL {aurora_version(engine_version)} "
                                          f"(compatible with MySQL {mysql_version})",
            "SupportedEngineModes": ["provisioned"], "Status": "available",
            "ExportableLogTypes": ["audit", "error", "general", "slowquery"],
            "SupportsLogExportsToCloudwatchLogs": True, "SupportsReadReplica": True}


# -- a group's values on the stand-in ----------------------------------------------------
#: Every mysqld option the group may write, dash/underscore-insensitive (see :func:`option_key`).
MANAGED_OPTIONS = frozenset({"disable_log_bin", "skip_log_bin", "log_bin", "binlog_format"}
                            | {p.mysqld.replace("-", "_") for p in PARAMETERS if p.mysqld})


def option_key(option: str) -> str:
    return option.replace("-", "_")


def change_problem(family: str, name: str, value: str | None, apply_method: str | None
                   ) -> tuple[str, str] | None:
    """(error code, message) with which AWS refuses this change, or None."""
    param = defaults(family).get(name)
    if param is None:
        return "InvalidParameterValue", f"Could not find parameter with name: {name}"
    if not param.modifiable:
        return "InvalidParameterValue", f"The parameter {name} cannot be modified."
    if value is None:
        return "InvalidParameterValue", f"The parameter value for parameter {name} must be provided."
    if (problem := param.problem(value)) is not None:
        return "InvalidParameterValue", problem
    if apply_method not in (None, "immediate", "pending-reboot"):
        return "InvalidParameterValue", f"Invalid apply method: {apply_method}"
    if apply_method == "immediate" and param.apply_type == "static":
        return "InvalidParameterCombination", "cannot use immediate apply method for static parameter"
    return None


def effective_values(family: str, user: dict[str, str]) -> dict[str, str | None]:
    """The group's value of every parameter: the user's where set, else the engine default."""
    return {name: user.get(name, param.default) for name, param in defaults(family).items()}


def mysqld_options(family: str, values: dict[str, str | None]) -> dict[str, str | None]:
    """Options that make the stand-in behave as a cluster with these parameter values."""
    fmt = (values.get("binlog_format") or "OFF").upper()
    opts: dict[str, str | None] = ({"disable-log-bin": None} if fmt == "OFF"
                                   else {"log-bin": BINLOG_BASENAME, "binlog_format": fmt})
    for name, param in defaults(family).items():
        value = values.get(name)
        if param.mysqld and value is not None:
            opts[param.mysqld] = param.canonical(value)
    return opts


def online_settings(family: str, changes: dict[str, str]) -> list[tuple[str, str | int]]:
    """``SET GLOBAL`` pairs for the dynamic parameters among ``changes`` (static ones wait for a reboot)."""
    table = defaults(family)
    out = []
    for name, value in changes.items():
        param = table.get(name)
        if param and param.mysqld and param.apply_type == "dynamic":
            value = param.canonical(value)
            out.append((param.mysqld, int(value) if value.lstrip("-").isdigit() else value))
    return out
