"""Plan, then apply: nothing changes a server or a cloud resource without an approval.

A phase builds a :class:`Plan` (a step id and the :class:`Step`s it would run, each with its
target, the SQL or API call and how to undo it) and hands it to :meth:`Gate.apply` with the
function that makes the change:

* empty plan -> ``Outcome('nothing to do')``; the function is not called;
* step approved (notebook parameter ``approve`` or the yaml's ``approvals``) -> the plan is shown,
  the function runs, ``Outcome('applied', result)``;
* not approved -> the plan is shown, a ``SKIPPED`` line is printed and an Apply button is
  displayed that runs the same function once when clicked (JupyterLab).  Nothing waits for the
  click (under papermill widget callbacks never fire): ``Outcome('skipped')``.

Step ids (DESIGN.md): ``source_binlog``, ``parameter_group``, ``backup``, ``restore``,
``replication_users``, ``replication``, ``routines``, ``failover_test``, ``cutover:<scope>``,
``fallback:<scope>``, ``fix:<channel>``, ``cleanup:<resource>``.

Wildcards: only ``cleanup:*`` is accepted (it approves every ``cleanup:<resource>``).  A cut-over,
a fallback and a replication fix must each name their target, like gh-ost's and Terraform's
explicit applies: ``cutover:*``, ``fix:*`` and ``*`` are refused.
"""
from __future__ import annotations

import difflib
import re
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runbook_lib.core.display import in_ipython, show, show_table
from runbook_lib.core.errors import NotApproved, ParameterError, PlanStale, RunbookError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

PLAIN_STEPS = ("source_binlog", "parameter_group", "backup", "restore", "replication_users",
               "replication", "routines", "failover_test")
TARGETED_STEPS = ("cutover", "fallback", "fix", "cleanup")  # '<family>:<target>'
SCOPED_STEPS = ("cutover", "fallback")                      # the target is a scope of the yaml
WILDCARD_STEPS = ("cleanup",)                               # '<family>:*' allowed
_TARGET = re.compile(r"^[A-Za-z0-9_.\-/]+$")
_ALL_FORMS = PLAIN_STEPS + tuple(f"{f}:<target>" for f in TARGETED_STEPS)


def step_id_problem(step_id: str, *, wildcard_ok: bool = False) -> str:
    """Why ``step_id`` is not a valid step id ('' when it is)."""
    if step_id in PLAIN_STEPS:
        return ""
    family, sep, target = step_id.partition(":")
    if not sep or family not in TARGETED_STEPS:
        close = difflib.get_close_matches(family, PLAIN_STEPS + TARGETED_STEPS, n=2, cutoff=0.6)
        return f"{step_id!r} is not a step id" + (f" (did you mean {' or '.join(close)}?)" if close else "")
    if target == "*":
        if not wildcard_ok:
            return f"{step_id!r}: a wildcard is not a step id"
        if family not in WILDCARD_STEPS:
            what = "scope" if family in SCOPED_STEPS else "target"
            return (f"{step_id!r}: a {family} must be approved by name ({family}:<{what}>), "
                    "not by wildcard")
        return ""
    if not _TARGET.match(target):
        return f"{step_id!r}: {family} needs a target name after ':'"
    return ""


def _check_step_id(step_id: str) -> str:
    problem = step_id_problem(step_id)
    if problem:
        raise RunbookError(f"invalid plan: {problem}", hint=f"step ids are {', '.join(_ALL_FORMS)}")
    return step_id


@dataclass(frozen=True)
class Step:
    """One change: where, what (the exact SQL/API call, already redacted), and how to undo it."""

    target: str
    action: str
    detail: str
    reversible: bool = False
    undo: str = ""


@dataclass(frozen=True)
class Plan:
    """What one approvable step would change.  ``steps`` is a tuple (a list is converted)."""

    step_id: str
    title: str
    steps: tuple[Step, ...] = ()
    notes: str = ""

    def __post_init__(self) -> None:
        _check_step_id(self.step_id)
        object.__setattr__(self, "steps", tuple(self.steps))

    @property
    def is_empty(self) -> bool:
        return not self.steps

    def to_frame(self) -> pd.DataFrame:
        """Columns #, target, action, detail, undo; any secret known to the process is masked."""
        import pandas as pd

        from runbook_lib.core.redact import redact
        rows = []
        for n, s in enumerate(self.steps, 1):
            if s.reversible:
                undo = s.undo or "—"
            else:
                undo = "not reversible" + (f": {s.undo}" if s.undo else "")
            rows.append({"#": n, "target": s.target, "action": s.action, "detail": redact(s.detail),
                         "undo": redact(undo)})
        return pd.DataFrame(rows, columns=["#", "target", "action", "detail", "undo"])

    def require_unchanged(self, fresh: Plan, *, what: str = "the servers",
                          hint: str = "run the plan cell again and review the new plan") -> None:
        """Before applying: PlanStale unless the plan built again now has this plan's steps
        (what it was built from changed after it was shown and approved)."""
        if fresh.steps != self.steps:
            raise PlanStale(f"{self.title}: {what} changed since this plan was shown; nothing was applied",
                            hint=hint)


@dataclass(frozen=True)
class Approvals:
    """The step ids approved for this run, from the notebook parameter and from the yaml."""

    from_notebook: frozenset[str] = frozenset()
    from_yaml: frozenset[str] = frozenset()

    @classmethod
    def build(cls, approve: Iterable[str] | str | None = (), yaml_approvals: Iterable[str] = (), *,
              scopes: Mapping[str, Any] | None = None, source: str = "") -> Approvals:
        """Parse and check both sources.  ``approve`` may be a list or a comma-separated string.

        With ``scopes`` given, cutover:/fallback: approvals must name one of them.  Invalid ids ->
        ParameterError naming 'approve' (notebook) or 'approvals' (yaml ``source``).
        """
        notebook = _parse("approve", approve, scopes, "notebook parameter")
        yaml_ids = _parse("approvals", yaml_approvals, scopes, source)
        return cls(frozenset(notebook), frozenset(yaml_ids))

    @property
    def all(self) -> frozenset[str]:
        return self.from_notebook | self.from_yaml

    def why(self, step_id: str) -> str:
        """Which approval covers ``step_id`` ('' if none), e.g. "approve=['backup']"."""
        for origin, ids in (("approve", self.from_notebook),
                            ("approvals in the parameters file", self.from_yaml)):
            for approved in sorted(ids):
                if approved == step_id or (approved.endswith(":*") and step_id.startswith(approved[:-1])):
                    return f"{origin}: {approved}"
        return ""

    def approved(self, step_id: str) -> bool:
        """Exact match, or a ``cleanup:*`` wildcard covering a ``cleanup:<resource>`` step."""
        return bool(self.why(step_id))


def _parse(name: str, value: Iterable[str] | str | None, scopes: Mapping[str, Any] | None,
           source: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple, set, frozenset)) and all(isinstance(v, str) for v in value):
        items = list(value)
    else:
        raise ParameterError(name, f"expected a list of step ids or a comma-separated string, got "
                                   f"{type(value).__name__}", source=source)
    ids = [i.strip() for i in items if i.strip()]
    for step_id in ids:
        problem = step_id_problem(step_id, wildcard_ok=True)
        family, _, target = step_id.partition(":")
        if not problem and scopes is not None and family in SCOPED_STEPS and target not in scopes:
            problem = f"{step_id!r} names no scope of this environment"
            hint = f"scopes are: {', '.join(sorted(scopes)) or '(none defined)'}"
        else:
            hint = f"step ids are {', '.join(_ALL_FORMS)}; only cleanup:* may use a wildcard"
        if problem:
            raise ParameterError(name, problem, source=source, hint=hint)
    return ids


@dataclass(frozen=True)
class Outcome:
    """What :meth:`Gate.apply` did.  ``status``: 'applied', 'skipped' or 'nothing to do'."""

    status: str
    step_id: str
    result: Any = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True unless the step was skipped."""
        return self.status != "skipped"

    def require(self) -> Outcome:
        """NotApproved if the step was skipped; otherwise this outcome (for chaining)."""
        if self.status == "skipped":
            raise NotApproved(self.step_id)
        return self


def skipped_message(step_id: str) -> str:
    return (f"SKIPPED: step '{step_id}' not approved — nothing was changed. "
            f"Click Apply below, or run headless with approve=['{step_id}'].")


class Gate:
    """Applies plans that are approved; shows and offers (button) those that are not."""

    def __init__(self, approvals: Approvals) -> None:
        self.approvals = approvals
        self.log: list[Outcome] = []  # every outcome, including button clicks, in order

    def apply(self, plan: Plan, fn: Callable[[], Any]) -> Outcome:
        """Apply ``plan`` with ``fn()`` if approved; see the module docstring.  fn's errors propagate."""
        if plan.is_empty:
            print(f"{plan.title}: nothing to do (step '{plan.step_id}').")
            return self._record(Outcome("nothing to do", plan.step_id))
        self._show_plan(plan)
        why = self.approvals.why(plan.step_id)
        if not why:
            print(skipped_message(plan.step_id))
            if in_ipython():
                show(self.button_for(plan, fn))
            else:
                print("(the Apply button appears when this runs in JupyterLab)")
            return self._record(Outcome("skipped", plan.step_id))
        print(f"APPROVED ({why}): applying step '{plan.step_id}', {len(plan.steps)} change(s)...")
        start = time.monotonic()
        result = fn()
        outcome = self._record(Outcome("applied", plan.step_id, result, time.monotonic() - start))
        print(f"APPLIED: step '{plan.step_id}' in {outcome.seconds:.1f}s.")
        if result is not None:
            show(result)
        return outcome

    def button_for(self, plan: Plan, fn: Callable[[], Any]) -> Any:
        """An ipywidgets box: an Apply button that runs ``fn`` once, and an Output for its result.

        The button is disabled while running and after success; after a failure it is enabled
        again and the Output shows the error (a callback's exception would otherwise be lost in
        the kernel log).
        """
        import ipywidgets as widgets
        button = widgets.Button(description=f"Apply {plan.step_id}", button_style="warning",
                                tooltip=f"{plan.title}: {len(plan.steps)} change(s)",
                                layout=widgets.Layout(width="auto"))
        out = widgets.Output()

        def on_click(_: Any) -> None:
            if button.disabled:
                return
            button.disabled = True
            button.description = f"Applying {plan.step_id}..."
            start = time.monotonic()
            try:
                result = fn()
            except Exception as e:  # noqa: BLE001 - shown to the operator, who can click again
                button.disabled = False
                button.description = f"Apply {plan.step_id} (failed - retry)"
                button.button_style = "danger"
                out.append_stderr(_error_text(e))
                return
            seconds = time.monotonic() - start
            self._record(Outcome("applied", plan.step_id, result, seconds))
            button.description = f"Applied {plan.step_id} ✔"
            button.button_style = "success"
            out.append_stdout(f"APPLIED: step '{plan.step_id}' in {seconds:.1f}s.\n")
            if result is not None:
                with out:
                    show(result)

        button.on_click(on_click)
        return widgets.VBox([button, out])

    def _show_plan(self, plan: Plan) -> None:
        print(f"PLAN {plan.step_id}: {plan.title}")
        show_table(plan.to_frame())
        if plan.notes:
            print(plan.notes)

    def _record(self, outcome: Outcome) -> Outcome:
        self.log.append(outcome)
        return outcome


def _error_text(e: Exception) -> str:
    from runbook_lib.core.redact import redact
    if isinstance(e, RunbookError):
        return redact(f"FAILED: {e}\n")
    last = traceback.extract_tb(e.__traceback__)[-1:] if e.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return redact(f"FAILED: {type(e).__name__}: {e}{where}\n")
