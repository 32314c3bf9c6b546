"""Phase 10: clean-up at the end of the fallback window (or of a rehearsal), as a careful DBA does it.

First :func:`inventory`: what EXISTS, read from both servers and the AWS APIs (never assumed), a row
per resource with where it is, its state, what deleting it does and the approval step that deletes it,
in the order of deletion.  Then one approvable step per resource (:data:`RESOURCES`), in this order:

* ``cleanup:replication``: the runbook's channel on each side is stopped and forgotten (Aurora through
  the ``mysql.rds_*`` procedures of its generation, the source with its version's ``STOP REPLICA`` /
  ``RESET REPLICA ALL`` for the default channel only).  A channel that replicates from another host
  than the peer the parameters name is not the runbook's and is left alone;
* ``cleanup:accounts``: ``DROP USER`` of the replication account on EACH side: once the channels are
  reset, a drop on one side no longer reaches the other;
* ``cleanup:cluster``: the readers, then the writer, then the cluster ``aurora_cluster_id`` with a
  final snapshot ``<cluster>-final-<UTC date-time>`` (none only with ``final_snapshot=False``);
* ``cleanup:parameter_group``: ``aurora_parameter_group``, once no cluster uses it;
* ``cleanup:backup``: the objects under ``s3://<s3_bucket>/<s3_prefix>`` and the runbook's backups in
  ``backup_dir`` (nothing else in the bucket or the folder).

Each step is planned again from the servers and AWS when its cell runs (:func:`plan_step`): a resource
already gone plans nothing; a step whose predecessor is still there raises NotApplied; a resource in
``keep``, or still needed by a kept one, is kept.  :meth:`Inventory.require_clean` judges what is left.
The pure half (values, decisions, tables) is :mod:`runbook_lib.phases.cleanup.plan`.
"""
from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook_lib.aws.calls import aws_call, aws_pages, error_code
from runbook_lib.aws.clusters import describe_cluster
from runbook_lib.aws.s3 import bucket_exists, s3_objects
from runbook_lib.checks import channels
from runbook_lib.core.approval import Outcome, Plan
from runbook_lib.core.errors import AwsError, CheckFailed, NotApplied, ParameterError, RunbookError
from runbook_lib.mysql.status import ReplicaStatus
from runbook_lib.phases.backup_restore.backup import MANIFEST
from runbook_lib.phases.cleanup.inventory import Inventory, build_rows
from runbook_lib.phases.cleanup.plan import (
    RESOURCES,
    TITLES,
    Action,
    Channel,
    ClusterInfo,
    Found,
    Instance,
    Settings,
    decide,
)
from runbook_lib.phases.parameter_group.steps import describe_group
from runbook_lib.phases.replication import steps as replication

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from runbook_lib.context.params import RunbookParameters
    from runbook_lib.context.session import Session

__all__ = ["CleanupStep", "figures", "inventory",
           "local_backups", "plan_step", "survey"]

BACKUP_NAME = re.compile(r"^\d{8}T\d{6}Z$")      # folder names of backup_restore's backups
S3_BATCH = 1000                                   # DeleteObjects takes at most 1000 keys
_GONE = {"DBInstanceNotFound", "DBInstanceNotFoundFault", "DBClusterNotFoundFault", "DBClusterNotFound"}


# --- what exists ---------------------------------------------------------------------------------

def local_backups(backup_dir: str | Path) -> tuple[tuple[str, ...], int]:
    """(paths, bytes) of what backup_restore wrote in ``backup_dir``: manifests, their backup folders
    and xtrabackup logs, and folders named like its backups (an unfinished one).  Nothing outside it."""
    root = Path(backup_dir)
    if not root.is_dir():
        return (), 0
    inside, found = root.resolve(), set()
    for manifest in root.glob(f"*{MANIFEST}"):
        name = manifest.name[:-len(MANIFEST)]
        found |= {manifest, root / name, root / f"{name}.xtrabackup.log"}
    found |= {d for d in root.iterdir() if d.is_dir() and BACKUP_NAME.match(d.name)}
    paths = sorted(p for p in found if (p.exists() or p.is_symlink()) and p.resolve() != inside
                   and p.resolve().is_relative_to(inside))
    files = (f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
    return tuple(str(p) for p in paths), sum(f.stat().st_size for f in files)


def _instance_status(rds: Any, identifier: str) -> str:
    """DescribeDBInstances' status, '' once the instance is gone."""
    try:
        found = aws_call(rds, "describe_db_instances", DBInstanceIdentifier=identifier)["DBInstances"]
    except AwsError as e:
        if error_code(e) in _GONE:
            return ""
        raise
    return found[0].get("DBInstanceStatus", "") if found else ""


def _cluster(rds: Any, p: RunbookParameters) -> ClusterInfo | None:
    try:
        found = aws_call(rds, "describe_db_clusters", DBClusterIdentifier=p.aurora_cluster_id)["DBClusters"]
    except AwsError as e:
        if error_code(e) in _GONE:
            return None
        raise
    if not found:
        return None
    c, named = found[0], {p.aurora_writer_instance, p.aurora_reader_instance} - {""}
    members = [(m["DBInstanceIdentifier"], bool(m.get("IsClusterWriter")))
               for m in c.get("DBClusterMembers", [])]
    return ClusterInfo(c["DBClusterIdentifier"], c.get("Status", ""), c.get("DBClusterParameterGroup", ""),
                       bool(c.get("DeletionProtection")),
                       tuple(Instance(i, w, _instance_status(rds, i), i in named) for i, w in members))


def survey(rb: Session) -> Found:
    """Read what exists (read-only): channels and accounts on both servers (Aurora's only while its
    cluster exists), the cluster and its instances, the group, the backup in S3 and in backup_dir."""
    p, rds, s3 = rb.params, rb.aws("rds"), rb.aws("s3")
    cluster = _cluster(rds, p)
    servers = {"source": rb.source(), **({"aurora": rb.aurora()} if cluster else {})}
    specs = channels.channel_specs(p)
    found_channels, accounts = [], []
    for role, srv in servers.items():
        status = ReplicaStatus.read(srv, "")
        if status is not None:
            spec = specs[channels.TO_SOURCE if role == "source" else channels.TO_AURORA]
            ours = status.source_host.lower() == spec.host.lower() and status.source_port == spec.port
            found_channels.append(Channel(role, f"{status.source_host}:{status.source_port}", status.io_running,
                                    status.sql_running, status.state, ours))
        if replication.read_account(srv, p.replication_user, p.replication_user_host) is not None:
            accounts.append(role)
    group = p.aurora_parameter_group.lower()
    users = tuple(c["DBClusterIdentifier"] for c in aws_pages(rds, "describe_db_clusters", "DBClusters")
                  if c.get("DBClusterParameterGroup", "").lower() == group)
    objects = s3_objects(s3, p.s3_bucket, p.s3_prefix) if bucket_exists(s3, p.s3_bucket) else None
    versioned = objects is not None and aws_call(s3, "get_bucket_versioning", Bucket=p.s3_bucket).get(
        "Status") in ("Enabled", "Suspended")
    local, local_bytes = local_backups(p.backup_dir)
    prefix = f"{p.aurora_cluster_id.lower()}-final-"
    snapshots = aws_pages(rds, "describe_db_cluster_snapshots", "DBClusterSnapshots", SnapshotType="manual")
    return Found(servers["source"].identity, servers["aurora"].identity if cluster else None,
                 channels=tuple(found_channels), accounts=tuple(accounts), cluster=cluster,
                 group_exists=describe_group(rds, p.aurora_parameter_group) is not None, group_users=users,
                 bucket=p.s3_bucket if objects is not None else "", versioned=versioned,
                 s3_objects=len(objects or {}),
                 s3_bytes=sum((objects or {}).values()), local=local, local_bytes=local_bytes,
                 final_snapshots=tuple(x["DBClusterSnapshotIdentifier"] for x in snapshots
                                       if x["DBClusterSnapshotIdentifier"].startswith(prefix)))


def inventory(rb: Session, s: Settings) -> Inventory:
    """What exists now (:func:`survey`) and, for each resource, what the clean-up does with it."""
    found = survey(rb)
    return Inventory(build_rows(found, rb.params, s), found, s)


# --- the steps -----------------------------------------------------------------------------------

_NEEDS = {"replication": "the reset of the runbook's replication channels on both sides",
          "cluster": "the deletion of the Aurora cluster"}
_NOTES = {
    "replication": "Aurora's channel first, then the source's. From now on nothing written on one side "
                   "reaches the other. Channels from other hosts are not the runbook's and are left alone.",
    "accounts": "Dropped on each side separately: the channels are reset, so a DROP USER no longer "
                "replicates.",
    "cluster": "Readers first, then the writer (no failover onto an instance about to go), then the cluster.",
    "parameter_group": "Only the group the parameters name, and only once no cluster uses it.",
    "backup": "Only the objects under s3_prefix and the runbook's backups in backup_dir: the bucket and "
              "anything else in the folder stay.",
}


@dataclass(frozen=True)
class CleanupStep:
    """``rb.gate.apply(step.plan, step.apply)`` for one resource."""

    resource: str
    plan: Plan
    actions: tuple[Action, ...] = ()
    settings: Settings = field(default_factory=Settings)
    rb: Any = field(default=None, repr=False, compare=False)

    def apply(self) -> pd.DataFrame:
        """Plan again from the servers and AWS; PlanStale if that is not the plan shown; then run it."""
        import pandas as pd
        fresh = plan_step(self.rb, self.resource, self.settings)
        self.plan.require_unchanged(fresh.plan, what="what exists")
        rows = [{"#": n, "target": a.target, "action": a.action, "result": _run(self.rb, a, self.settings)}
                for n, a in enumerate(fresh.actions, 1)]
        return pd.DataFrame(rows, columns=["#", "target", "action", "result"])


def plan_step(rb: Session, resource: str, s: Settings) -> CleanupStep:
    """The plan of ``cleanup:<resource>`` from what exists now.

    Empty when the resource is gone or kept; NotApplied while the resource that must go first is still
    there; CheckFailed when it must not be deleted (deletion protection, what the parameters do not name).
    """
    if resource not in RESOURCES:
        raise ParameterError("resource", f"{resource!r} is not one of {', '.join(RESOURCES)}")
    d = decide(survey(rb), rb.params, s)[resource]
    if d.verdict == "refused":
        raise CheckFailed(f"clean-up of {resource}", [d.why], hint=(
            "nothing was deleted; if it really must go, remove the obstacle yourself (e.g. aws rds "
            f"modify-db-cluster --no-deletion-protection), or add '{resource}' to keep"))
    if d.after:
        raise NotApplied(_NEEDS[d.after], f"cleanup:{d.after}",
                         hint=f"approve and apply step 'cleanup:{d.after}' (earlier in this notebook) "
                              f"first, or add '{d.after}' to keep")
    title = TITLES[resource] + (f" (kept: {d.why})" if d.verdict == "kept" else "")
    actions = d.actions if d.verdict == "delete" else ()
    notes = _NOTES[resource] if actions else ""
    return CleanupStep(resource, Plan(f"cleanup:{resource}", title, tuple(a.step for a in actions), notes),
                       actions, s, rb)


def _run(rb: Session, a: Action, s: Settings) -> str:
    rds = rb.aws("rds")
    if a.kind == "sql":
        channels.server(rb, a.role).execute(a.sql)
        return "done"
    if a.kind == "aws":
        method, kwargs = a.arg
        aws_call(rds, method, **kwargs)
        return "requested"
    if a.kind == "wait_instance":
        return _wait_gone(f"instance {a.arg}", lambda: _instance_status(rds, a.arg), s.timeout_minutes)
    if a.kind == "wait_cluster":
        return _wait_gone(f"cluster {a.arg}", lambda: getattr(describe_cluster(rds, a.arg), "status", ""),
                          s.timeout_minutes)
    if a.kind == "s3":
        return _delete_objects(rb)
    return _remove_local(rb.params.backup_dir, a.arg)


def _wait_gone(what: str, read: Callable[[], str], timeout_minutes: float) -> str:
    """Poll ``read()`` (a status; '' once gone) every 1 s, doubling to 30 s; print each new status."""
    started, pause, last = time.monotonic(), 1.0, ""
    while status := read():
        if status != last:
            print(f"{what}: {status}")
            last = status
        if time.monotonic() - started > timeout_minutes * 60:
            raise RunbookError(f"{what} is still {status} after {timeout_minutes:g} min",
                               hint="AWS goes on deleting it: run this notebook again later (what is gone "
                                    "plans nothing)")
        time.sleep(pause)
        pause = min(pause * 2, 30.0)
    return f"gone after {time.monotonic() - started:.0f} s"


def _delete_objects(rb: Session) -> str:
    p, s3 = rb.params, rb.aws("s3")
    keys = sorted(s3_objects(s3, p.s3_bucket, p.s3_prefix))
    for start in range(0, len(keys), S3_BATCH):
        batch = [{"Key": k} for k in keys[start:start + S3_BATCH]]
        answer = aws_call(s3, "delete_objects", Bucket=p.s3_bucket, Delete={"Objects": batch, "Quiet": True})
        errors = answer.get("Errors", [])
        if errors:
            e = errors[0]
            raise AwsError("DeleteObjects", f"{len(errors)} object(s) not deleted, e.g. {e.get('Key')}: "
                           f"{e.get('Code')} {e.get('Message')}", hint="check s3:DeleteObject on the prefix "
                           "(and any object lock), then run this step again")
    return f"deleted {len(keys)} objects"


def _remove_local(backup_dir: str, paths: Iterable[str]) -> str:
    inside, paths = Path(backup_dir).resolve(), [Path(x) for x in paths]
    for path in paths:
        if path.resolve() == inside or not path.resolve().is_relative_to(inside):
            raise RunbookError(f"{path} is not inside backup_dir {backup_dir}: not removed",
                               hint="the clean-up removes only the runbook's backups in backup_dir")
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as e:
            raise RunbookError(f"cannot remove {path}: {e.strerror or e}",
                               hint="check the permissions of backup_dir, then run this step again") from e
    return f"removed {len(paths)}"


def figures(before: Inventory, after: Inventory, outcomes: Iterable[Outcome] = ()) -> dict:
    """What the run summary keeps of this phase."""
    def states(inv: Inventory) -> dict[str, str]:
        return {f"{r.resource} @ {r.where}": r.state if r.present else "absent" for r in inv.rows}
    s = before.settings
    deleted = any(r.resource.startswith("cluster ") and r.outcome == "delete" for r in before.rows)
    return {"keep": sorted(s.keep), "final_snapshot": s.snapshot_id if deleted and s.final_snapshot else "",
            "steps": {o.step_id: o.status for o in outcomes if o.step_id.startswith("cleanup:")},
            "before": states(before), "after": states(after), "verdict": after.verdict()}
