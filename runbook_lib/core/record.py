"""What a phase keeps for the run's summary: :func:`record` writes figures into the folder of a
``runbook run`` (``$RUNBOOK_RUN_DIR``), which the runner merges into ``summary.json``."""
from __future__ import annotations

import json
import os
from pathlib import Path

FIGURES_ENV = "RUNBOOK_RUN_DIR"


def record(section: str, figures: dict) -> None:
    """Called from a notebook: keep ``figures`` under ``section`` in the run's summary.json.

    Outside a ``runbook run`` (a person in JupyterLab) there is no run folder and
    nothing is written; the notebook shows its figures anyway.  Returns nothing, so
    the cell that calls it shows nothing."""
    run_dir = os.environ.get(FIGURES_ENV)
    if not run_dir:
        return
    path = Path(run_dir) / "figures" / f"{section}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2, default=str))


def append(section: str, item: dict) -> None:
    """Like :func:`record`, for a section that keeps a list: ``item`` is added to what this run kept
    under ``section`` before (every cut-over and fallback of a run, say).  Nothing outside a run."""
    run_dir = os.environ.get(FIGURES_ENV)
    if not run_dir:
        return
    path = Path(run_dir) / "figures" / f"{section}.json"
    kept = json.loads(path.read_text()) if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([*kept, item], indent=2, default=str))
