"""The decisions of the clean-up (phase 10), pure: its knobs (:func:`settings`), what exists as values
(:class:`Found`), and :func:`decide`, which maps them to one :class:`Decision` per resource (delete /
kept / absent / refused, the resource that must go first, the actions of its step).  No server, AWS or
file access: :mod:`runbook_lib.phases.cleanup.steps` reads what exists and applies the steps;
:mod:`runbook_lib.phases.cleanup.inventory` builds the tables.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runbook_lib.core.approval import Step
from runbook_lib.core.errors import ParameterError
from runbook_lib.mysql.dialect import dialect_for
from runbook_lib.mysql.identity import ServerIdentity
from runbook_lib.mysql.sql import Sql

if TYPE_CHECKING:  # pragma: no cover

    from runbook_lib.context.params import RunbookParameters

RESOURCES = ("replication", "accounts", "cluster", "parameter_group", "backup")
TITLES = {"replication": "stop and reset the replication channels",
          "accounts": "drop the replication account",
          "cluster": "delete the Aurora cluster and its instances",
          "parameter_group": "delete the DB cluster parameter group",
          "backup": "delete the backup"}
KEPT = "listed in keep"


# --- knobs -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    keep: frozenset[str] = frozenset()
    final_snapshot: bool = True
    snapshot_id: str = ""            # the final snapshot's name, fixed when the settings are made
    timeout_minutes: float = 60.0


def snapshot_name(cluster_id: str, when: datetime) -> str:
    """``<cluster>-final-YYYYMMDD-HHMMSS`` (UTC): a valid cluster snapshot identifier."""
    stamp = when.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return re.sub(r"-{2,}", "-", f"{cluster_id.lower()}-final-{stamp}")[:255]


def settings(params: RunbookParameters, keep: Iterable[str] = (), final_snapshot: bool = True,
             timeout_minutes: float = 60.0, *, now: datetime | None = None) -> Settings:
    """Check the notebook's knobs (ParameterError naming the knob); fix the final snapshot's name."""
    if isinstance(keep, str) or not all(isinstance(k, str) for k in keep):
        raise ParameterError("keep", f"expected a list of resource names, got {keep!r}",
                             hint=f"e.g. keep=['cluster']; names: {', '.join(RESOURCES)}")
    unknown = [k for k in keep if k not in RESOURCES]
    if unknown:
        raise ParameterError("keep", f"{', '.join(map(repr, unknown))} is not a resource of the clean-up",
                             hint=f"resources: {', '.join(RESOURCES)}")
    if not isinstance(final_snapshot, bool):
        raise ParameterError("final_snapshot", f"expected True or False, got {final_snapshot!r}")
    if isinstance(timeout_minutes, bool) or not isinstance(timeout_minutes, (int, float)) \
            or timeout_minutes <= 0:
        raise ParameterError("timeout_minutes", f"expected a positive number, got {timeout_minutes!r}")
    if not params.s3_prefix.strip("/"):
        raise ParameterError("s3_prefix", f"{params.s3_prefix!r} names the whole bucket {params.s3_bucket}",
                             hint="the clean-up deletes only under a prefix: set s3_prefix, e.g. backup/")
    when = now or datetime.now(timezone.utc)
    return Settings(frozenset(keep), final_snapshot, snapshot_name(params.aurora_cluster_id, when),
                    float(timeout_minutes))


# --- what exists -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Channel:
    role: str                  # the replica that holds it: 'source' | 'aurora'
    source: str                # host:port it replicates from
    io: str
    sql: str
    state: str                 # ReplicaStatus.state
    ours: bool                 # replicates from the peer the parameters name

    @property
    def stopped(self) -> bool:
        return self.io == "No" and self.sql == "No"


@dataclass(frozen=True)
class Instance:
    identifier: str
    writer: bool
    status: str
    named: bool                # aurora_writer_instance or aurora_reader_instance


@dataclass(frozen=True)
class ClusterInfo:
    identifier: str
    status: str
    parameter_group: str
    deletion_protection: bool = False
    instances: tuple[Instance, ...] = ()


@dataclass(frozen=True)
class Found:
    """Everything the clean-up may touch, as read now.  ``aurora`` is None when the cluster does not
    exist: Aurora's server is gone with it and is not asked."""

    source: ServerIdentity
    aurora: ServerIdentity | None = None
    channels: tuple[Channel, ...] = ()
    accounts: tuple[str, ...] = ()             # roles that have the replication account
    cluster: ClusterInfo | None = None
    group_exists: bool = False
    group_users: tuple[str, ...] = ()          # clusters that use aurora_parameter_group
    bucket: str = ""                           # s3_bucket, when it exists
    versioned: bool = False                    # the bucket keeps noncurrent versions of deleted objects
    s3_objects: int = 0                        # under s3_prefix
    s3_bytes: int = 0
    local: tuple[str, ...] = ()                # the runbook's backup files/folders in backup_dir
    local_bytes: int = 0
    final_snapshots: tuple[str, ...] = ()      # <cluster>-final-* cluster snapshots


# --- what each step does (pure) ----------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    """One change of a clean-up step: what the plan shows (:attr:`step`) and what runs."""

    target: str
    action: str
    detail: str
    undo: str = ""
    kind: str = "sql"          # sql | aws | wait_instance | wait_cluster | s3 | local
    role: str = ""             # sql: 'source' | 'aurora'
    sql: Sql | None = None
    arg: Any = None            # aws: (method, kwargs); wait_*: identifier; local: paths

    @property
    def step(self) -> Step:
        return Step(self.target, self.action, self.detail, reversible=bool(self.undo), undo=self.undo)


@dataclass(frozen=True)
class Decision:
    """``verdict``: 'delete', 'kept', 'absent' or 'refused'; ``after``: a resource to delete first."""

    resource: str
    verdict: str
    why: str = ""
    after: str = ""
    actions: tuple[Action, ...] = ()


def server_location(p: RunbookParameters, role: str) -> str:
    """'source host:port' or 'aurora host:port', as tables and plans name a server."""
    if role == "source":
        return f"source {p.source_host}:{p.source_port}"
    return f"aurora {p.aurora_host}:{p.aurora_port}"


def _replication(f: Found, p: RunbookParameters, s: Settings) -> Decision:
    ours = [c for c in f.channels if c.ours]
    if not ours:
        return Decision("replication", "absent")
    if "replication" in s.keep:
        return Decision("replication", "kept", KEPT)
    actions = []
    for c in sorted(ours, key=lambda c: c.role != "aurora"):            # Aurora's channel first
        ident = f.aurora if c.role == "aurora" else f.source
        d, where = dialect_for(ident, role=c.role), server_location(p, c.role)
        stop, reset = ((d.stop_replication(), d.reset_external_source()) if ident.is_aurora
                       else (d.stop_replica(""), d.reset_replica_all("")))
        if not c.stopped:
            actions.append(Action(where, f"stop replication from {c.source}", str(stop), "start it again",
                                  role=c.role, sql=stop))
        actions.append(Action(where, f"forget the source {c.source}", str(reset),
                              "run 05_replication again (auto-position resumes while the binary logs last)",
                              role=c.role, sql=reset))
    return Decision("replication", "delete", actions=tuple(actions))


def _accounts(f: Found, p: RunbookParameters, s: Settings, repl: Decision) -> Decision:
    if not f.accounts:
        return Decision("accounts", "absent")
    if "accounts" in s.keep:
        return Decision("accounts", "kept", KEPT)
    if repl.verdict == "kept":
        return Decision("accounts", "kept", "the kept replication channels log in with it")
    actions = []
    for role in f.accounts:
        ident = f.aurora if role == "aurora" else f.source
        sql = dialect_for(ident, role=role).drop_user(p.replication_user, p.replication_user_host)
        actions.append(Action(server_location(p, role), "drop the replication account",
                              f"{sql} (this side only: the channels are reset, it no longer replicates)",
                              "create it again: 05_replication (step replication_users)", role=role, sql=sql))
    return Decision("accounts", "delete", after="replication" if repl.verdict == "delete" else "",
                    actions=tuple(actions))


def _cluster_decision(f: Found, p: RunbookParameters, s: Settings, repl: Decision) -> Decision:
    c = f.cluster
    if c is None:
        return Decision("cluster", "absent")
    if "cluster" in s.keep:
        return Decision("cluster", "kept", KEPT)
    if repl.verdict == "kept":
        return Decision("cluster", "kept", "the kept replication channels use it")
    if c.deletion_protection:
        return Decision("cluster", "refused", f"cluster {c.identifier} has deletion protection on")
    unnamed = [i.identifier for i in c.instances if not i.named]
    if unnamed:
        return Decision("cluster", "refused", f"cluster {c.identifier} has instances the parameters do "
                                              f"not name: {', '.join(unnamed)}")
    target, actions = f"AWS RDS {p.aws_region}", []
    for writer in (False, True):                           # readers first: no failover onto them
        for i in (i for i in c.instances if i.writer == writer):
            if i.status != "deleting":
                actions.append(Action(target, f"DeleteDBInstance ({'writer' if writer else 'reader'})",
                                      i.identifier, "CreateDBInstance (04_backup_restore adds it again)",
                                      kind="aws", arg=("delete_db_instance",
                                                       {"DBInstanceIdentifier": i.identifier})))
            actions.append(Action(target, "wait", f"until instance {i.identifier} is gone", "—",
                                  kind="wait_instance", arg=i.identifier))
    if c.status != "deleting":
        kwargs: dict[str, Any] = {"DBClusterIdentifier": c.identifier}
        if s.final_snapshot:
            kwargs["FinalDBSnapshotIdentifier"] = s.snapshot_id
            detail = f"{c.identifier}, final snapshot {s.snapshot_id}"
            undo = f"RestoreDBClusterFromSnapshot {s.snapshot_id}, then the instances"
        else:
            kwargs["SkipFinalSnapshot"] = True
            detail, undo = f"{c.identifier}, SkipFinalSnapshot (final_snapshot=False): its data is lost", ""
        actions.append(Action(target, "DeleteDBCluster", detail, undo, kind="aws",
                              arg=("delete_db_cluster", kwargs)))
    actions.append(Action(target, "wait", f"until cluster {c.identifier} is gone (at most "
                                          f"{s.timeout_minutes:g} min)", "—", kind="wait_cluster",
                          arg=c.identifier))
    return Decision("cluster", "delete", after="replication" if repl.verdict == "delete" else "",
                    actions=tuple(actions))


def _group(f: Found, p: RunbookParameters, s: Settings, cluster: Decision) -> Decision:
    name = p.aurora_parameter_group
    if not f.group_exists:
        return Decision("parameter_group", "absent")
    if "parameter_group" in s.keep:
        return Decision("parameter_group", "kept", KEPT)
    if name.lower().startswith("default."):
        return Decision("parameter_group", "kept", "a default group belongs to AWS")
    others = [u for u in f.group_users if u.lower() != p.aurora_cluster_id.lower()]
    if others:
        return Decision("parameter_group", "refused", f"group {name} is used by clusters the parameters "
                                                      f"do not name: {', '.join(others)}")
    after = ""
    if f.group_users:                                      # used by the cluster the parameters name
        if cluster.verdict in ("kept", "refused"):
            state = "kept" if cluster.verdict == "kept" else "not deleted"
            return Decision("parameter_group", "kept",
                            f"cluster {p.aurora_cluster_id} uses it and is {state}")
        after = "cluster"
    action = Action(f"AWS RDS {p.aws_region}", "DeleteDBClusterParameterGroup", name,
                    "create it again: 03_parameter_group", kind="aws",
                    arg=("delete_db_cluster_parameter_group", {"DBClusterParameterGroupName": name}))
    return Decision("parameter_group", "delete", after=after, actions=(action,))


def _backup(f: Found, p: RunbookParameters, s: Settings) -> Decision:
    if not f.s3_objects and not f.local:
        return Decision("backup", "absent")
    if "backup" in s.keep:
        return Decision("backup", "kept", KEPT)
    actions = []
    if f.s3_objects:
        versions = ("; the bucket is versioned: their noncurrent versions stay until its lifecycle rules "
                    "expire them" if f.versioned else "")
        actions.append(Action(f"AWS S3 {p.aws_region}", "DeleteObjects", f"{f.s3_objects} objects "
                              f"({mib(f.s3_bytes)}) under s3://{p.s3_bucket}/{p.s3_prefix}{versions}",
                              kind="s3"))
    if f.local:
        names = ", ".join(Path(x).name for x in f.local)
        actions.append(Action("this machine", "remove", f"{len(f.local)} files/folders "
                              f"({mib(f.local_bytes)}) in {p.backup_dir}: {names}", kind="local",
                              arg=f.local))
    return Decision("backup", "delete", actions=tuple(actions))


def decide(f: Found, p: RunbookParameters, s: Settings) -> dict[str, Decision]:
    """What each resource's step would do now, in :data:`RESOURCES` order."""
    repl = _replication(f, p, s)
    cluster = _cluster_decision(f, p, s, repl)
    return {"replication": repl, "accounts": _accounts(f, p, s, repl), "cluster": cluster,
            "parameter_group": _group(f, p, s, cluster), "backup": _backup(f, p, s)}


def mib(n: int) -> str:
    """Bytes as '1,234.5 MiB'."""
    return f"{n / 2**20:,.1f} MiB"
