"""Run the runbook's notebooks with papermill against the test lab.

``pipeline.through("04_backup_restore")`` runs every notebook up to and including
that one, once per session, with the lab parameters' approvals (as `runbook run`
does); ``pipeline.run(stem, **params)`` runs one notebook now.  Test files are named
``test_NN_*.py`` so pytest takes them in phase order: a phase's tests may rely on
``through(<previous phase>)``, and do their "nothing approved changes nothing"
checks before they apply their own phase.
"""
from __future__ import annotations

import html
from pathlib import Path

import nbformat
import papermill
import pytest
import yaml

from runbook_lib.run import kernel
from runbook_lib.run.kernel import NAME as KERNEL
from runbook_lib.run.runner import NOTEBOOKS, discover


def outputs_text(nb) -> str:
    """Every text a notebook showed (stdout, stderr, text/plain, text/html unescaped), for assertions."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append(out["text"])
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in out.get("data", {}):
                    text = out["data"][mime]
                    parts.append(html.unescape(text) if mime == "text/html" else text)
            if out.get("output_type") == "error":
                parts.append(f"{out['ename']}: {out['evalue']}")
    return "\n".join(parts)


class Pipeline:
    def __init__(self, lab, out_dir: Path) -> None:
        self.lab, self.out_dir = lab, out_dir
        self.params = yaml.safe_load(Path(lab.params_file).read_text())
        self.done: dict[str, nbformat.NotebookNode] = {}
        self.count = 0

    def params_file(self, **changes) -> Path:
        """A variant of the lab's parameters file (e.g. approvals=[] or a wrong port)."""
        data = {**self.params, **changes}
        self.count += 1
        path = self.out_dir / f"params-{self.count}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def run(self, stem: str, params_file: Path | None = None, **parameters) -> nbformat.NotebookNode:
        """Execute notebooks/<stem>.ipynb now; raises PapermillExecutionError if a cell fails."""
        self.count += 1
        out = self.out_dir / f"{self.count:03d}-{stem}.ipynb"
        papermill.execute_notebook(str(NOTEBOOKS / f"{stem}.ipynb"), str(out),
                                   parameters={"params_file": str(params_file or self.lab.params_file),
                                               **parameters},
                                   kernel_name=KERNEL, kernel_manager_class=kernel.MANAGER, language="python",
                                   progress_bar=False,
                                   cwd=str(NOTEBOOKS), start_timeout=120)
        return nbformat.read(out, as_version=4)

    def through(self, stem: str) -> dict[str, nbformat.NotebookNode]:
        """Run, once per session, every notebook up to and including ``stem``."""
        for nb in discover():
            if nb.stem not in self.done:
                self.done[nb.stem] = self.run(nb.stem)
            if nb.stem == stem:
                return self.done
        raise ValueError(f"no notebook {stem!r}")


@pytest.fixture(scope="session")
def pipeline(lab, tmp_path_factory) -> Pipeline:
    kernel.ensure()          # the spec may have been rewritten by another checkout's `make setup`
    return Pipeline(lab, tmp_path_factory.mktemp("executed"))
