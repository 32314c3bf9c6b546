"""The tables of the clean-up (phase 10): the inventory of what exists, in the order of deletion, with
what deleting each resource does and the approval step that does it (:meth:`Inventory.to_frame`), and,
read again at the end, what is left (:meth:`Inventory.left_frame`, :meth:`Inventory.verdict`).  Pure:
built from a :class:`~runbook_lib.phases.cleanup.plan.Found` and the decisions of :mod:`runbook_lib.phases.cleanup.plan`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runbook_lib.checks.channels import TO_AURORA, TO_SOURCE
from runbook_lib.core.display import CheckResult, verdict
from runbook_lib.core.errors import CheckFailed
from runbook_lib.phases.cleanup.plan import RESOURCES, Decision, Found, Settings, decide, mib, server_location

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from runbook_lib.context.params import RunbookParameters

EFFECTS = {
    "aurora channel": "Aurora stops applying the source's writes and forgets the source",
    "source channel": "the fallback path ends: nothing written on Aurora reaches the source any more",
    "account": "no server can replicate from this side as this account any more",
    "instance": "the instance (its compute and cost) goes; the data stays in the cluster volume",
    "group": "its settings are gone (03_parameter_group creates it again)",
    "s3": "the physical copy of the source in S3 (all its data) is gone: it cannot seed a new cluster",
    "local": "the local copy (all of the source's data) is gone and its disk space freed",
}


@dataclass(frozen=True)
class Row:
    """One resource.  ``outcome``: its Decision's verdict, 'absent', or 'other' (not the runbook's)."""

    order: int | None
    resource: str
    where: str
    state: str
    effect: str
    step: str
    present: bool
    outcome: str


def _step_text(d: Decision, outcome: str) -> str:
    if outcome == "other":
        return "left alone: not from the peer the parameters name"
    return {"delete": f"cleanup:{d.resource}" + (f" (after cleanup:{d.after})" if d.after else ""),
            "kept": f"kept: {d.why}", "refused": f"REFUSED: {d.why}"}.get(outcome, "nothing to do")


def build_rows(f: Found, p: RunbookParameters, s: Settings) -> tuple[Row, ...]:
    """One row per resource the clean-up knows, numbered in the order of deletion."""
    d, rds, out = decide(f, p, s), f"AWS RDS {p.aws_region}", []

    def add(dec: Decision, resource: str, where: str, state: str, effect: str, present: bool = True,
            other: bool = False) -> None:
        outcome = "other" if other else dec.verdict if present else "absent"
        out.append(Row(None, resource, where, state if present else state or "absent",
                       effect if present else "", _step_text(dec, outcome), present, outcome))

    unread = "not read: no cluster, Aurora's side is gone with it" if f.aurora is None else ""
    for role, direction, key in (("aurora", TO_AURORA, "aurora channel"),
                                 ("source", TO_SOURCE, "source channel")):
        c = next((c for c in f.channels if c.role == role), None)
        state = (f"{c.state} (IO {c.io}, SQL {c.sql}), from {c.source}" if c else
                 unread if role == "aurora" else "")
        add(d["replication"], f"replication channel {direction}", server_location(p, role), state,
            EFFECTS[key], c is not None, c is not None and not c.ours)
    account = f"account {p.replication_user}@{p.replication_user_host}"
    for role in ("source", "aurora"):
        present = role in f.accounts
        add(d["accounts"], account, server_location(p, role), "exists" if present else
            unread if role == "aurora" else "", EFFECTS["account"], present)
    c = f.cluster
    for i in sorted(c.instances if c else (), key=lambda i: i.writer):
        add(d["cluster"], f"instance {i.identifier} ({'writer' if i.writer else 'reader'})", rds,
            i.status or "?", EFFECTS["instance"])
    effect = (f"the cluster and its storage go; final snapshot {s.snapshot_id} keeps a copy (it costs "
              "storage)" if s.final_snapshot else
              "the cluster and ALL its data are deleted for good (no final snapshot)")
    protection = "ON" if c and c.deletion_protection else "off"
    add(d["cluster"], f"cluster {p.aurora_cluster_id}", rds, c and f"{c.status}, group {c.parameter_group}, "
        f"{len(c.instances)} instance(s), deletion protection {protection}", effect, c is not None)
    add(d["parameter_group"], f"parameter group {p.aurora_parameter_group}", rds,
        "used by " + (", ".join(f.group_users) or "no cluster"), EFFECTS["group"], f.group_exists)
    add(d["backup"], "backup objects in S3", f"s3://{p.s3_bucket}/{p.s3_prefix}",
        f"{f.s3_objects} objects, {mib(f.s3_bytes)}", EFFECTS["s3"], f.s3_objects > 0)
    add(d["backup"], "local backup", f"{p.backup_dir} (this machine)",
        f"{len(f.local)} files/folders, {mib(f.local_bytes)}", EFFECTS["local"], bool(f.local))
    order = iter(range(1, len(out) + 1))
    return tuple(dataclasses.replace(r, order=next(order)) if r.outcome == "delete" else r for r in out)


@dataclass(frozen=True)
class Left:
    """One row of "what is left": ``status`` pass (gone, or kept on purpose), fail, or info."""

    resource: str
    where: str
    now: str
    wanted: str
    status: str
    advice: str = ""


@dataclass(frozen=True)
class Inventory:
    """What exists (:meth:`to_frame`, the plan) and how it compares with the wish (:meth:`left_frame`)."""

    rows: tuple[Row, ...]
    found: Found | None = field(default=None, repr=False, compare=False)
    settings: Settings = field(default_factory=Settings)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd
        data = [{"#": r.order or "", "resource": r.resource, "where": r.where, "state": r.state,
                 "deleting it": r.effect, "approval step": r.step} for r in self.rows]
        return pd.DataFrame(data, columns=["#", "resource", "where", "state", "deleting it", "approval step"])

    def summary(self) -> str:
        todo = sorted({r.step.split(" ")[0] for r in self.rows if r.outcome == "delete"},
                      key=lambda x: RESOURCES.index(x.split(":")[1]))
        kept = [r.resource for r in self.rows if r.present and r.outcome in ("kept", "other")]
        return (f"{sum(r.present for r in self.rows)} resource(s) exist; to delete, in order: "
                f"{', '.join(todo) or 'nothing'}" + (f"; kept: {', '.join(kept)}" if kept else ""))

    def left(self) -> list[Left]:
        """Gone, or kept on purpose, passes; still there when it should not be fails."""
        out = []
        for r in self.rows:
            if not r.present:
                out.append(Left(r.resource, r.where, r.state if r.state.startswith("not read") else "gone",
                                "gone", "pass"))
            elif r.outcome in ("delete", "refused"):
                advice = r.step if r.outcome == "refused" else f"approve {r.step} and run again, or keep it"
                out.append(Left(r.resource, r.where, r.state, "gone", "fail", advice))
            else:
                status = "pass" if r.outcome == "kept" else "info"
                out.append(Left(r.resource, r.where, r.state, "kept", status, r.step))
        f = self.found
        for snapshot in f.final_snapshots if f else ():
            out.append(Left(f"final snapshot {snapshot}", "AWS RDS", "exists", "kept", "info",
                            "delete it when it is no longer needed: it costs storage"))
        if f and f.bucket:
            out.append(Left("S3 bucket", f"s3://{f.bucket}", "exists", "kept", "info",
                            "only the objects under s3_prefix are deleted; delete the bucket yourself if "
                            "it was made for this migration"))
        return out

    def left_frame(self) -> pd.DataFrame:
        import pandas as pd
        symbol = {r.status: CheckResult("", status=r.status).ok for r in self.left()}
        rows = [{"resource": r.resource, "where": r.where, "now": r.now, "wanted": r.wanted,
                 "ok": symbol[r.status], "advice": r.advice} for r in self.left()]
        return pd.DataFrame(rows, columns=["resource", "where", "now", "wanted", "ok", "advice"])

    def verdict(self) -> str:
        return verdict([CheckResult(f"{r.resource} @ {r.where}", status=r.status) for r in self.left()],
                       "clean-up")

    def require_clean(self) -> None:
        """CheckFailed (with the table) when something that should be gone is still there."""
        failed = [f"{r.resource} @ {r.where}" for r in self.left() if r.status == "fail"]
        if failed:
            raise CheckFailed("clean-up", failed, table=self.left_frame(),
                              hint="approve the steps the table names (or add the resources to keep) and "
                                   "run this notebook again: what is gone plans nothing")
