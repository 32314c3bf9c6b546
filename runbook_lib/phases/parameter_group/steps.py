"""Phase 3: Aurora's custom DB cluster parameter group for binary-log replication.

Binary-log settings of Aurora MySQL live in a *cluster* parameter group.  This phase makes one
named ``aurora_parameter_group`` (family ``aurora_parameter_group_family``) hold the values that
bi-directional GTID replication needs (:func:`desired_values`), so that the restore of phase 4
creates the cluster with it:

* :func:`inspect` reads the group (or, if it does not exist yet, the family's defaults it would
  start from) and :func:`plan_changes` compares that with the desired values - pure logic;
* :func:`plan` turns the difference into a :class:`GroupChange`: an approval ``Plan`` (step id
  ``parameter_group``) and the function that applies it (create the group if missing, then one
  ``ModifyDBClusterParameterGroup`` with only the values that differ, ApplyMethod ``immediate``
  for a dynamic parameter and ``pending-reboot`` for a static one);
* :func:`compare` is the console's "Compare" of the group with the family's defaults, with a
  verdict; it raises NotApplied while the group is missing or lacks a desired value.

Every AWS call goes through :func:`~runbook_lib.aws.calls.aws_call`/:func:`~runbook_lib.aws.calls.aws_pages`,
which turn botocore errors into :class:`~runbook_lib.core.errors.AwsError` with a hint.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runbook_lib.aws.calls import aws_call, aws_pages, error_code
from runbook_lib.core.approval import Plan, Step
from runbook_lib.core.display import CheckResult, verdict
from runbook_lib.core.errors import AwsError, NotApplied

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from runbook_lib.context.params import RunbookParameters
    from runbook_lib.context.session import Session

STEP_ID = "parameter_group"
MODIFY_BATCH = 20          # ModifyDBClusterParameterGroup takes at most 20 parameters per call
APPLY_METHOD = {"dynamic": "immediate", "static": "pending-reboot"}

# --- values ------------------------------------------------------------------------------------

def desired_values(params: RunbookParameters) -> dict[str, str]:
    """Aurora's parameter names -> the values bi-directional GTID replication needs."""
    return {
        "binlog_format": "ROW",
        "gtid-mode": "ON",
        "enforce_gtid_consistency": "ON",
        "log_bin_trust_function_creators": "1",
        "auto_increment_increment": str(params.auto_increment_increment),
        "auto_increment_offset": str(params.aurora_auto_increment_offset),
    }


@dataclass(frozen=True)
class Parameter:
    """One parameter as DescribeDBClusterParameters / DescribeEngineDefaultClusterParameters give it."""

    name: str
    value: str = ""              # '' when AWS shows no value (the engine's own default)
    apply_type: str = "static"   # dynamic | static
    source: str = ""             # engine-default | system | user
    modifiable: bool = True

    @classmethod
    def from_aws(cls, item: Mapping[str, Any]) -> Parameter:
        return cls(name=item["ParameterName"], value=str(item.get("ParameterValue", "")),
                   apply_type=item.get("ApplyType", "static"), source=item.get("Source", ""),
                   modifiable=bool(item.get("IsModifiable", True)))


def same_value(a: str, b: str) -> bool:
    """AWS keeps what was given: 'on' and 'ON', '1' and '01' mean the same to MySQL."""
    a, b = a.strip(), b.strip()
    if a.isdigit() and b.isdigit():
        return int(a) == int(b)
    return a.lower() == b.lower()


@dataclass(frozen=True)
class ParameterChange:
    """One desired value and what the group holds now."""

    name: str
    current: str
    desired: str
    apply_type: str

    @property
    def needed(self) -> bool:
        return not same_value(self.current, self.desired)

    @property
    def apply_method(self) -> str:
        return APPLY_METHOD.get(self.apply_type, "pending-reboot")

    def to_aws(self) -> dict[str, str]:
        return {"ParameterName": self.name, "ParameterValue": self.desired, "ApplyMethod": self.apply_method}


def plan_changes(desired: Mapping[str, str], current: Mapping[str, Parameter], *,
                 family: str) -> tuple[ParameterChange, ...]:
    """Every desired parameter with its current value (pure).  ``current``: name -> Parameter.

    A name the family does not have, or one AWS does not let a customer modify, is an AwsError
    before anything is changed (AWS would refuse it halfway through).
    """
    out = []
    for name, value in desired.items():
        known = current.get(name)
        if known is None:
            raise AwsError("DescribeDBClusterParameters", f"parameter {name!r} is not in family {family}",
                           hint="check aurora_parameter_group_family: it must be the family of "
                                "aurora_engine_version (aurora-mysql8.4 for Aurora 8.4, aurora-mysql8.0 for 3, aurora-mysql5.7 for 2)")
        if not known.modifiable and not same_value(known.value, value):
            raise AwsError("DescribeDBClusterParameters", f"parameter {name!r} is not modifiable in {family}",
                           hint="this family cannot be used for binary-log replication")
        out.append(ParameterChange(name, known.value, value, known.apply_type))
    return tuple(out)


def changes_frame(changes: Iterable[ParameterChange]) -> pd.DataFrame:
    """Columns parameter, current, desired, apply type, apply method, change."""
    import pandas as pd
    rows = [{"parameter": c.name, "current": c.current or "(engine default)", "desired": c.desired,
             "apply type": c.apply_type, "apply method": c.apply_method,
             "change": "yes" if c.needed else "no"} for c in changes]
    return pd.DataFrame(rows, columns=["parameter", "current", "desired", "apply type", "apply method",
                                       "change"])


# --- reading the group -------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupState:
    """The group as AWS describes it now (or the family's defaults it would start from if missing),
    with the values it should hold."""

    name: str
    family: str
    exists: bool
    parameters: tuple[Parameter, ...]
    defaults: tuple[Parameter, ...]
    desired: tuple[tuple[str, str], ...]

    def by_name(self) -> dict[str, Parameter]:
        return {p.name: p for p in self.parameters}

    @property
    def changes(self) -> tuple[ParameterChange, ...]:
        return plan_changes(dict(self.desired), self.by_name(), family=self.family)

    def to_frame(self) -> pd.DataFrame:
        """The desired parameters: current value, desired value, apply type/method, change yes/no."""
        return changes_frame(self.changes)


def engine_defaults(rds: Any, family: str) -> tuple[Parameter, ...]:
    """The family's default cluster parameters (DescribeEngineDefaultClusterParameters)."""
    items = aws_pages(rds, "describe_engine_default_cluster_parameters", "EngineDefaults.Parameters",
                      DBParameterGroupFamily=family)
    if not items:
        raise AwsError("DescribeEngineDefaultClusterParameters", f"family {family!r} has no parameters",
                       hint="check aurora_parameter_group_family (e.g. aurora-mysql8.0)")
    return tuple(Parameter.from_aws(i) for i in items)


def describe_group(rds: Any, name: str) -> dict | None:
    """The DBClusterParameterGroups entry of ``name``; None if it does not exist."""
    try:
        answer = aws_call(rds, "describe_db_cluster_parameter_groups", DBClusterParameterGroupName=name)
    except AwsError as e:
        if error_code(e) in ("DBParameterGroupNotFound", "DBParameterGroupNotFoundFault"):
            return None
        raise
    groups = answer.get("DBClusterParameterGroups", [])
    return groups[0] if groups else None


def inspect(rb: Session) -> GroupState:
    """Read the group and the family's defaults.  Raises AwsError (family mismatch included)."""
    p, rds = rb.params, rb.aws("rds")
    desired = tuple(desired_values(p).items())
    defaults = engine_defaults(rds, p.aurora_parameter_group_family)
    group = describe_group(rds, p.aurora_parameter_group)
    if group is None:
        return GroupState(p.aurora_parameter_group, p.aurora_parameter_group_family, False, defaults, defaults,
                          desired)
    else:
        actual = group.get("DBParameterGroupFamily", "")
        if actual != p.aurora_parameter_group_family:
            raise AwsError("DescribeDBClusterParameterGroups",
                           f"group {p.aurora_parameter_group!r} exists in family {actual!r}, not "
                           f"{p.aurora_parameter_group_family!r}",
                           hint="a group's family cannot change: use another aurora_parameter_group name, "
                                "or fix aurora_parameter_group_family")
        items = aws_pages(rds, "describe_db_cluster_parameters", "Parameters",
                          DBClusterParameterGroupName=p.aurora_parameter_group)
        current = {i["ParameterName"]: Parameter.from_aws(i) for i in items}
        # AWS lists every parameter; a group that lists only what was set still starts from the defaults
        merged = {d.name: d for d in defaults} | current
    return GroupState(p.aurora_parameter_group, actual, True, tuple(merged.values()), defaults, desired)


# --- the plan ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupChange:
    """The approval plan of this phase and the function that applies it (``rb.gate.apply(c.plan, c.apply)``)."""

    plan: Plan
    state: GroupState
    changes: tuple[ParameterChange, ...]
    rds: Any = None
    description: str = ""

    def apply(self) -> pd.DataFrame:
        """Create the group if missing, then modify only the values that differ.  Returns what was set."""
        s = self.state
        if not s.exists:
            aws_call(self.rds, "create_db_cluster_parameter_group", DBClusterParameterGroupName=s.name,
                     DBParameterGroupFamily=s.family, Description=self.description)
        needed = [c for c in self.changes if c.needed]
        for start in range(0, len(needed), MODIFY_BATCH):
            aws_call(self.rds, "modify_db_cluster_parameter_group", DBClusterParameterGroupName=s.name,
                     Parameters=[c.to_aws() for c in needed[start:start + MODIFY_BATCH]])
        return changes_frame(needed)


def plan(rb: Session, state: GroupState | None = None) -> GroupChange:
    """What this phase would change; an empty plan when the group exists with the desired values."""
    state = state or inspect(rb)
    changes = state.changes
    steps = []
    if not state.exists:
        steps.append(Step(f"AWS RDS {rb.params.aws_region}", "CreateDBClusterParameterGroup",
                          f"{state.name} (family {state.family})", reversible=True,
                          undo=f"DeleteDBClusterParameterGroup {state.name} (only while no cluster uses it)"))
    for c in changes:
        if c.needed:
            steps.append(Step(f"group {state.name}", "ModifyDBClusterParameterGroup",
                              f"{c.name} = {c.desired} (now {c.current or 'engine default'}; "
                              f"ApplyMethod {c.apply_method})", reversible=True,
                              undo=f"set {c.name} back to {c.current or 'its default (ResetDBClusterParameterGroup)'}"))
    notes = ("Static parameters (pending-reboot) take effect when a cluster using the group starts or "
             "reboots; the restore of phase 4 creates the cluster with this group.") if steps else ""
    description = f"runbook: binlog replication for {rb.params.aurora_cluster_id}"
    return GroupChange(Plan(STEP_ID, f"cluster parameter group {state.name}", tuple(steps), notes),
                       state, changes, rb.aws("rds"), description)


# --- compare with the defaults -----------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """The group next to its family's defaults, as the console's Compare shows them."""

    group: str
    family: str
    rows: tuple[tuple[str, str, str], ...]      # (parameter, default, this group)
    checks: tuple[CheckResult, ...]

    def to_frame(self) -> pd.DataFrame:
        """Columns parameter, default, this group, changed."""
        import pandas as pd
        table = [{"parameter": n, "default": d or "(engine default)", "this group": v or "(engine default)",
                  "changed": "yes" if not same_value(d, v) else "no"} for n, d, v in self.rows]
        return pd.DataFrame(table, columns=["parameter", "default", "this group", "changed"])

    @property
    def verdict(self) -> str:
        return verdict(self.checks, f"parameter group {self.group}")

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)


def comparison(state: GroupState) -> Comparison:
    """Pure: rows for every desired parameter and every other parameter that differs from its default."""
    desired = dict(state.desired)
    defaults = {d.name: d.value for d in state.defaults}
    current = state.by_name()
    names = list(desired) + sorted(n for n, p in current.items()
                                   if n not in desired and not same_value(p.value, defaults.get(n, "")))
    rows = tuple((n, defaults.get(n, ""), current[n].value if n in current else "") for n in names)
    checks = []
    for name, want in desired.items():
        have = current[name].value if name in current else ""
        ok = same_value(have, want)
        checks.append(CheckResult(name, want, have or "(engine default)", "pass" if ok else "fail",
                                  "" if ok else f"set {name} to {want} (approve step {STEP_ID!r})"))
    return Comparison(state.name, state.family, rows, tuple(checks))


def compare(rb: Session) -> Comparison:
    """Read the group again and compare it with the family's defaults.

    Raises NotApplied when the group is missing or does not hold every desired value.
    """
    state = inspect(rb)
    if not state.exists:
        raise NotApplied(f"cluster parameter group {state.name}", STEP_ID)
    result = comparison(state)
    if not result.ok:
        failed = ", ".join(c.item for c in result.checks if c.status == "fail")
        raise NotApplied(f"the desired values of {failed} in group {state.name}", STEP_ID)
    return result
