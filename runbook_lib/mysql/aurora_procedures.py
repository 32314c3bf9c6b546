"""Aurora's ``mysql.rds_*`` procedures, spelled per Aurora version: the half of
:class:`~runbook_lib.mysql.dialect.Dialect` that only an Aurora server answers (Dialect inherits it;
call it through ``server.dialect``).  Names and arguments follow AWS, "Aurora MySQL stored procedure
reference" and "Configuring, starting, and stopping binary log (binlog) replication"; generation 2
spells ``..._master...``, 3 and 8.4 ``..._source...``.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from runbook_lib.core.errors import ParameterError, UnsupportedServer
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.sql import Sql, int_param, single_gtid

if TYPE_CHECKING:  # pragma: no cover
    from runbook_lib.mysql.identity import ServerIdentity

#: First Aurora version with ``mysql.rds_set_binlog_source_ssl`` (AWS, "Configuring, starting, and
#: stopping binary log (binlog) replication": "supported for Aurora MySQL version 3.06 and higher").
BINLOG_SOURCE_SSL_SINCE = (3, 6, 0)
#: Aurora's largest ``binlog retention hours`` (Aurora 2.11+ and 3); older Aurora 2 allowed 168.
AURORA_MAX_BINLOG_RETENTION_HOURS = 2160
#: First Aurora MySQL release with ``mysql.rds_gtid_purged`` (Aurora User Guide, "Replicating
#: transactions using GTIDs": "supported for Aurora MySQL version 3.04 and higher").
RDS_GTID_PURGED_SINCE = (3, 4, 0)


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


class AuroraProcedures:
    """The ``mysql.rds_*`` statements; mixed into :class:`~runbook_lib.mysql.dialect.Dialect`, which
    gives them ``identity``, ``role`` and ``_proc`` (the procedure's name for this generation)."""

    identity: ServerIdentity
    role: str

    def _proc(self, gen2: str, gen3: str | None = None) -> str:   # pragma: no cover - Dialect's
        raise NotImplementedError

    def set_external_source(self, host: str, port: int, user: str, password: str) -> Sql:
        """Make this Aurora cluster a GTID auto-position replica of an external source.

        The procedure's fifth argument, ``ssl_encryption``, is always 0: for both Aurora generations
        AWS documents it as "This option isn't currently implemented" ("Configuring, starting, and
        stopping binary log (binlog) replication").  TLS is :meth:`set_binlog_source_ssl`.
        """
        proc = self._proc("rds_set_external_master_with_auto_position",
                          "rds_set_external_source_with_auto_position")
        int_param("port", port, 1, 65535)
        return Sql(f"CALL {proc}(%s, %s, %s, %s, 0)", (host, port, user, password), secret_args=(3,))

    @property
    def sets_binlog_source_ssl(self) -> bool:
        """``mysql.rds_set_binlog_source_ssl`` exists: Aurora MySQL 3.06 and higher (and so 8.4)."""
        return self.identity.is_aurora and self.identity.aurora_release >= BINLOG_SOURCE_SSL_SINCE

    def set_binlog_source_ssl(self, on: bool) -> Sql:
        """TLS on this Aurora cluster's external replication channel (``SOURCE_SSL``), encrypted but
        without verifying the source's certificate (AWS: ``SOURCE_SSL_VERIFY_SERVER_CERT`` "isn't
        supported").  Aurora 3.06+ only; call it after :meth:`set_external_source`, replication stopped."""
        proc = self._proc("rds_set_binlog_source_ssl")
        if not self.sets_binlog_source_ssl:
            raise UnsupportedServer(self.role, f"{proc} needs Aurora MySQL 3.06 or higher; this is "
                                    f"{self.identity.describe()}",
                                    hint="upgrade Aurora, or replicate without TLS with an account whose plugin "
                                         "works without it (mysql_native_password) over a private network")
        return Sql(f"CALL {proc}({int(bool(on))})")

    def start_replication(self) -> Sql:
        return Sql(f"CALL {self._proc('rds_start_replication')}")

    def stop_replication(self) -> Sql:
        return Sql(f"CALL {self._proc('rds_stop_replication')}")

    def skip_repl_error(self) -> Sql:
        return Sql(f"CALL {self._proc('rds_skip_repl_error')}")

    def skip_transaction_with_gtid(self, gtid: str) -> Sql:
        return Sql(f"CALL {self._proc('rds_skip_transaction_with_gtid')}(%s)", (single_gtid(gtid),))

    @property
    def has_rds_gtid_purged(self) -> bool:
        """``mysql.rds_gtid_purged`` exists here: Aurora MySQL 3.04 and later."""
        return (self.identity.aurora_generation == 3
                and version_tuple(self.identity.aurora_version) >= RDS_GTID_PURGED_SINCE)

    def gtid_purged(self, gtids: str) -> Sql:
        """Declare GTIDs executed on Aurora 3.04+ in one call: ``mysql.rds_gtid_purged('+set')`` appends to
        ``gtid_purged`` ("Replicating transactions using GTIDs"); refused if it overlaps gtid_executed."""
        proc = self._proc("rds_gtid_purged")
        if not self.has_rds_gtid_purged:
            raise UnsupportedServer(self.role, f"mysql.rds_gtid_purged needs Aurora MySQL 3.04+, not "
                                    f"{self.identity.aurora_version}", hint="skip_transaction_with_gtid() per GTID")
        try:
            wanted = GtidSet.parse(gtids.lstrip("+"))
        except ValueError as e:
            raise ParameterError("gtids", str(e)) from e
        if not wanted:
            raise ParameterError("gtids", "is empty: nothing to declare")
        return Sql(f"CALL {proc}(%s)", ("+" + str(wanted),))

    def reset_external_source(self) -> Sql:
        return Sql(f"CALL {self._proc('rds_reset_external_master', 'rds_reset_external_source')}")

    def set_binlog_retention(self, hours: int) -> Sql:
        proc = self._proc("rds_set_configuration")
        limit = AURORA_MAX_BINLOG_RETENTION_HOURS
        if self.identity.aurora_generation == 2 and version_tuple(self.identity.aurora_version) < (2, 11):
            limit = 168
        int_param("binlog retention hours", hours, 1, limit)
        return Sql(f"CALL {proc}('binlog retention hours', %s)", (hours,))

    def show_configuration(self) -> Sql:
        return Sql(f"CALL {self._proc('rds_show_configuration')}")
