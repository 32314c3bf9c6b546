"""The runbook's Jupyter kernel, ``aurora-fallback-runbook``.

The kernel spec names its interpreter as plain ``python``, which Jupyter replaces with
the interpreter of whoever starts the kernel: ``.venv/bin/jupyter lab``, ``runbook run``,
papermill and nbval started from the project's virtualenv all run the notebooks with
that virtualenv.  A spec holding an absolute path would tie every checkout on the
machine to the one that registered it last (and break them all once that checkout is
deleted).  :func:`ensure` (re)writes the spec when it is missing or differs; ``make
setup``, ``runbook run`` and the test suite call it.

    python -m runbook_lib.run.kernel      # register it (what ``make setup`` does)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

NAME = "aurora-fallback-runbook"
DISPLAY_NAME = "Aurora fallback runbook (Python 3)"


def spec() -> dict:
    return {
        "argv": ["python", "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "python",
        "metadata": {"debugger": True},
    }


def spec_dir() -> Path:
    """Where the spec lives: the user's Jupyter data directory, which every Jupyter
    process of this user searches first."""
    from jupyter_core.paths import jupyter_data_dir
    return Path(jupyter_data_dir()) / "kernels" / NAME


def ensure() -> Path:
    """Write the kernel spec unless an identical one is there; returns its file."""
    path = spec_dir() / "kernel.json"
    wanted = spec()
    try:
        if json.loads(path.read_text()) == wanted:
            return path
    except (OSError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(wanted, indent=1) + "\n")
    tmp.replace(path)
    return path


if __name__ == "__main__":
    print(f"kernel {NAME!r}: {ensure()}")
