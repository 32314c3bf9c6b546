"""Phase 4, after the restore: does Aurora's GTID history hold the backup's position?  If not, set it.

Replication from the source by auto-position starts after the GTIDs Aurora has executed, so Aurora
must hold the backup's GTID set (from ``xtrabackup_binlog_info``).  AWS does not promise that a
restore from S3 brings it: the Aurora User Guide's "Physical migration from MySQL by using Percona
XtraBackup and Amazon S3" starts binary log replication from the backup's binary log *file and
position*, and "Replicating transactions using GTIDs" offers ``mysql.rds_gtid_purged`` (Aurora MySQL
3.04 and higher) to set ``gtid_purged``, where MySQL's ``SET GLOBAL gtid_purged`` needs privileges
Aurora's master user lacks.  So the runbook reads Aurora's ``gtid_executed`` instead of assuming it:

* it holds the whole position: nothing to do (the empty plan needs no approval);
* part of it is missing, on Aurora 3.04+: ``CALL mysql.rds_gtid_purged('+<missing>')`` (step
  ``restore``);
* on older Aurora, a few missing GTIDs (at most :data:`MAX_SKIPS`): one
  ``mysql.rds_skip_transaction_with_gtid`` each; more: :class:`CheckFailed` with the steps to take.

The lab's stand-in can come up either way (``RUNBOOK_LAB_RESTORE_GTIDS=kept|lost`` for its endpoint).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runbook_lib.core.approval import Plan, Step
from runbook_lib.core.errors import CheckFailed
from runbook_lib.mysql.gtid import GtidSet
from runbook_lib.mysql.sql import Sql

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from runbook_lib.context.session import Session
    from runbook_lib.mysql.dialect import Dialect
    from runbook_lib.phases.backup_restore.backup import Backup

MAX_SKIPS = 1000      # one procedure call per GTID before Aurora 3.04; more: upgrade or restore again
TITLE = "Aurora's GTID history: the backup's position"


def missing_gtids(position: GtidSet, executed: GtidSet, exact: bool = True) -> GtidSet:
    """What of the backup's position Aurora's ``gtid_executed`` lacks and may be declared (pure).

    A position read after a clone that ran during writes (``exact`` False) may hold transactions the
    copy lacks: it is never declared.  Aurora's own history is then the position; if it has none,
    CheckFailed says to take the backup again."""
    missing = position - executed
    if missing and not exact:
        if executed and executed <= position:
            return GtidSet()
        raise CheckFailed("GTID position after the restore", ["Aurora has no GTID history"],
                          hint="the backup's position was read after a clone that ran during writes, so it is not "
                               "exact and cannot be declared: take the backup again without writes (or with "
                               "XtraBackup, whose xtrabackup_binlog_info is exact) and restore again")
    return missing


def statements(d: Dialect, missing: GtidSet) -> list[Sql]:
    """How this Aurora declares ``missing`` executed (pure); CheckFailed, with the steps, when it cannot."""
    if not missing:
        return []
    if d.has_rds_gtid_purged:
        return [d.gtid_purged(str(missing))]
    version = d.identity.aurora_version
    if missing.count() <= MAX_SKIPS:
        return [d.skip_transaction_with_gtid(g) for g in _each(missing)]
    raise CheckFailed("GTID position after the restore", [f"Aurora lacks {missing.count()} GTIDs"],
                      hint=f"Aurora MySQL {version} has no mysql.rds_gtid_purged (3.04 and later) and "
                           f"{missing.count()} GTIDs are too many to skip one by one: upgrade the cluster to "
                           "Aurora MySQL 3.04 or later (modify-db-cluster --engine-version) and run this cell "
                           "again, or delete the cluster and restore into aurora_engine_version 3.04 or later. "
                           "Do not start replication before: auto-position would ask the source for "
                           f"transactions the backup already holds ({missing})")


def _each(gtids: GtidSet) -> list[str]:
    return [f"{uuid}:{n}" if not tag else f"{uuid}:{tag}:{n}"
            for uuid, tag, lo, hi in gtids.intervals() for n in range(lo, hi + 1)]


@dataclass(frozen=True)
class PositionStep:
    """``rb.gate.apply(step.plan, step.apply)``: declare the missing part of the position executed."""

    plan: Plan
    sqls: tuple[Sql, ...] = ()
    replan: Callable[[], PositionStep] | None = field(default=None, repr=False)
    rb: Any = field(default=None, repr=False, compare=False)

    def apply(self) -> pd.DataFrame:
        import pandas as pd
        fresh = self.replan() if self.replan else self
        self.plan.require_unchanged(fresh.plan, hint="run this cell again and review the new plan")
        aurora = self.rb.aurora()
        before = GtidSet(aurora.variables("gtid_executed")["gtid_executed"] or "")
        for sql in fresh.sqls:
            aurora.execute(sql)
        after = GtidSet(aurora.variables("gtid_executed")["gtid_executed"] or "")
        return pd.DataFrame([("gtid_executed before", str(before)), ("gtid_executed after", str(after))],
                            columns=["item", "value"])


def plan_gtid_position(rb: Session, backup: Backup | None) -> PositionStep:
    """The plan (step ``restore``) that makes Aurora hold the backup's GTID position; empty when it does."""
    aurora = rb.aurora()
    executed = GtidSet(aurora.variables("gtid_executed")["gtid_executed"] or "")
    if backup is None:
        print("No backup record: Aurora's GTID history cannot be compared with a position (see the checks).")
        return PositionStep(Plan("restore", TITLE), rb=rb)
    missing = missing_gtids(backup.gtid_set, executed, backup.gtid_exact)
    if not missing:
        print(f"Aurora's gtid_executed holds the backup's position ({executed or 'empty'}): nothing to set.")
        return PositionStep(Plan("restore", TITLE), rb=rb)
    sqls = statements(aurora.dialect, missing)
    how = "mysql.rds_gtid_purged" if aurora.dialect.has_rds_gtid_purged else "mysql.rds_skip_transaction_with_gtid"
    steps = (Step("aurora", f"declare {missing.count()} GTIDs of the backup executed ({how})",
                  "; ".join(s.shown() for s in sqls)[:600], undo="the GTIDs count as executed"),)
    notes = (f"Aurora came up without part of the backup's GTID position: it lacks {missing} (gtid_executed is "
             f"{executed or 'empty'}). The data is the backup's; only its GTID record is missing. Declared executed, "
             "replication by auto-position starts right after the backup.")
    return PositionStep(Plan("restore", TITLE, steps, notes), tuple(sqls),
                        functools.partial(plan_gtid_position, rb, backup), rb)
