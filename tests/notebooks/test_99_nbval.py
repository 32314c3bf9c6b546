"""Each notebook, as stored, passes `pytest --nbval-lax` on the lab.

Runs after the phase tests (file order), so it is also the "run the whole runbook a
second time" check: every phase either finds its work done or redoes what clean-up
removed, without an error.  The stored parameters cells point at `$RUNBOOK_PARAMS`.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from runbook_lib.run.kernel import NAME as KERNEL
from runbook_lib.run.runner import NOTEBOOKS, discover

pytestmark = [pytest.mark.lab, pytest.mark.notebooks, pytest.mark.slow]


def test_every_notebook_passes_nbval_lax(lab, pipeline):
    pipeline.through(discover()[-1].stem)          # the runbook has run once already
    env = {**os.environ, "RUNBOOK_PARAMS": str(lab.params_file)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-kernel-name", KERNEL, "--nbval-cell-timeout", "600", "-q",
                           "-o", "addopts=", "-o", "testpaths=", str(NOTEBOOKS)],
                          env=env, capture_output=True, text=True, timeout=1200, cwd=NOTEBOOKS.parent)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
