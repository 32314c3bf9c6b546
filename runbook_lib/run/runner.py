"""`runbook run`: execute the ordered notebooks with papermill into an archived run folder.

A run folder ``runs/<timestamp>-<environment>/`` holds every executed notebook,
``report.html`` (the whole run, readable offline), ``parameters.yaml`` (references
only, secret values redacted), and ``summary.json``.  The run stops at the first
failed phase; the folder is scanned for every secret value the run used.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from runbook_lib.core.errors import ParameterError, RunbookError, SecretLeak, UnknownParameter
from runbook_lib.run import kernel
from runbook_lib.run.kernel import NAME as KERNEL

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
FIGURES_ENV = "RUNBOOK_RUN_DIR"       # the kernel learns the run folder from this variable


@dataclass
class PhaseResult:
    notebook: str
    status: str = "skipped"            # ok | failed | skipped
    seconds: float = 0.0
    error: str = ""
    failed_cell: int | None = None


@dataclass
class RunResult:
    run_dir: Path
    environment: str
    phases: list[PhaseResult] = field(default_factory=list)
    figures: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(p.status in ("ok", "skipped") for p in self.phases) and \
            any(p.status == "ok" for p in self.phases)

    def summary(self) -> dict:
        return {"environment": self.environment, "run_dir": str(self.run_dir),
                "verdict": "ok" if self.ok else "failed",
                "phases": [{"name": p.notebook, "status": p.status, "seconds": round(p.seconds, 2),
                            **({"error": p.error, "failed_cell": p.failed_cell} if p.error else {})}
                           for p in self.phases],
                **self.figures}


class PhaseFailed(RunbookError):
    def __init__(self, phase: PhaseResult, run_dir: Path) -> None:
        self.phase = phase
        super().__init__(f"phase {phase.notebook} failed at cell {phase.failed_cell}: {phase.error}",
                         hint=f"open {run_dir / (phase.notebook + '.ipynb')} to see the failed cell; "
                              "fix the cause and run again from this phase (--only)")


def discover(notebook_dir: Path = NOTEBOOKS) -> list[Path]:
    return sorted(p for p in notebook_dir.glob("[0-9][0-9]_*.ipynb"))


def select(notebooks: list[Path], only: str = "") -> list[Path]:
    """``only``: '' (all), '03', '02-05', '01,03,07-09' or names ('01_preflight')."""
    if not only:
        return notebooks
    wanted: set[int] = set()
    for part in only.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:_\w+)?(?:-(\d+))?", part)
        if not m:
            raise ParameterError("only", f"{part!r} is not a phase number or range", hint="e.g. 01,03-05")
        lo = int(m.group(1))
        wanted.update(range(lo, int(m.group(2) or lo) + 1))
    chosen = [nb for nb in notebooks if int(nb.name[:2]) in wanted]
    if not chosen:
        raise ParameterError("only", f"{only!r} selects no notebook",
                             hint="phases: " + ", ".join(nb.stem for nb in notebooks))
    return chosen


def notebook_parameters(nb: Path, params, params_file: Path) -> dict:
    """What papermill injects: params_file and the yaml's knobs for this notebook, which
    must be parameters the notebook declares (papermill only warns).  The yaml's
    approvals reach the notebook through the parameters file itself (session)."""
    import papermill

    declared = papermill.inspect_notebook(str(nb))
    values: dict = {}
    if "params_file" in declared:
        values["params_file"] = str(params_file.resolve())
    knobs = dict(params.notebook_parameters.get(nb.stem, {}))
    for name, value in knobs.items():
        if name not in declared:
            raise UnknownParameter(f"notebook_parameters.{nb.stem}.{name}", source=str(params_file),
                                   known=tuple(f"notebook_parameters.{nb.stem}.{k}" for k in declared))
        values[name] = value
    return values


def _run_dir(params, base: Path | None) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    root = base or Path(params.run_dir)
    if not root.is_absolute():
        root = REPO / root
    path = root / f"{stamp}-{params.environment}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def _collect_figures(run_dir: Path) -> dict:
    out: dict = {}
    for f in sorted((run_dir / "figures").glob("*.json")):
        out[f.stem] = json.loads(f.read_text())
    return out


def run(params_file: str | Path, *, only: str = "", run_dir: Path | None = None,
        notebook_dir: Path = NOTEBOOKS, progress: bool = True, say=print) -> RunResult:
    """Execute the selected notebooks in order; stop at the first failure."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from runbook_lib.context import secrets
    from runbook_lib.context.params import load_parameters
    from runbook_lib.core.redact import Redactor
    from runbook_lib.run import report

    params_file = Path(params_file).resolve()
    params = load_parameters(params_file)
    chosen = select(discover(notebook_dir), only)
    # Validate every notebook's knobs before anything runs: a typo stops the run, not phase 7.
    injected = {nb.stem: notebook_parameters(nb, params, params_file) for nb in chosen}
    result = RunResult(_run_dir(params, run_dir), params.environment,
                       [PhaseResult(nb.stem) for nb in chosen])
    secret_values = secrets.resolve_all(params)   # name -> value, for the scan only
    kernel.ensure()
    os.environ[FIGURES_ENV] = str(result.run_dir)
    say(f"run folder: {result.run_dir}")
    try:
        for nb, phase in zip(chosen, result.phases):
            started = time.monotonic()
            try:
                papermill.execute_notebook(str(nb), str(result.run_dir / nb.name), parameters=injected[nb.stem],
                                           kernel_name=KERNEL, kernel_manager_class=kernel.MANAGER,
                                           language="python", progress_bar=_bar(nb.stem) if progress else False,
                                           cwd=str(notebook_dir), start_timeout=120)
                phase.status = "ok"
            except PapermillExecutionError as e:
                phase.status, phase.failed_cell = "failed", e.exec_count
                phase.error = f"{e.ename}: {e.evalue}".strip()[:2000]
            finally:
                phase.seconds = time.monotonic() - started
            say(phase_line(phase))
            if phase.status == "failed":
                break
    finally:
        os.environ.pop(FIGURES_ENV, None)
        result.figures = _collect_figures(result.run_dir)
        (result.run_dir / "parameters.yaml").write_text(report.redacted_parameters(params, params_file))
        (result.run_dir / "summary.json").write_text(json.dumps(result.summary(), indent=2, default=str))
        report.write_html(result.run_dir, [result.run_dir / nb.name for nb in chosen
                                           if (result.run_dir / nb.name).exists()], result.summary())
        leaks = Redactor.scan_files_for(secret_values, sorted(result.run_dir.rglob("*")))
        if leaks:
            path, name = leaks[0]
            raise SecretLeak(str(path), name)
    failed = [p for p in result.phases if p.status == "failed"]
    if failed:
        raise PhaseFailed(failed[0], result.run_dir)
    return result


def upload(result: RunResult, params_file: str | Path) -> str:
    """Copy the run folder to the parameter ``report_s3_uri`` (s3://bucket/prefix)."""
    from runbook_lib.aws.client import aws_client
    from runbook_lib.context.params import load_parameters

    params = load_parameters(params_file)
    if not params.report_s3_uri.startswith("s3://"):
        raise ParameterError("report_s3_uri", f"{params.report_s3_uri!r} is not an s3:// URI",
                             source=str(params_file), hint="e.g. s3://my-bucket/runbook-runs/")
    bucket, _, prefix = params.report_s3_uri[5:].partition("/")
    s3 = aws_client(params, "s3")
    target = f"{prefix.rstrip('/')}/{result.run_dir.name}".lstrip("/")
    for path in sorted(p for p in result.run_dir.rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, f"{target}/{path.relative_to(result.run_dir)}")
    return f"s3://{bucket}/{target}/"


def _bar(phase: str) -> dict:
    """papermill's progress bar for one phase: named after it, gone once the phase's line is printed."""
    return {"desc": phase, "leave": False, "bar_format": "{desc:<24} {bar:30} {n_fmt}/{total_fmt} cells {elapsed}"}


def phase_line(p: PhaseResult) -> str:
    """One line per phase: name, status, seconds; a failure's first line of error and its cell."""
    line = f"{p.notebook:<24} {p.status:<8} {p.seconds:7.1f}s"
    if p.status == "failed":
        line += f"  cell {p.failed_cell}: {p.error.splitlines()[0][:160] if p.error else ''}"
    return line


def summary_table(result: RunResult) -> str:
    rows = [phase_line(p) for p in result.phases]
    return "\n".join(["phase                    status    time", *rows])


__all__ = ["run", "upload", "discover", "select", "notebook_parameters", "summary_table", "phase_line", "RunResult",
           "PhaseResult", "PhaseFailed"]
