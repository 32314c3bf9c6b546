"""The runbook's Jupyter kernel, ``aurora-fallback-runbook``.

The kernel spec names its interpreter as plain ``python``, which Jupyter replaces with
the interpreter of whoever starts the kernel: ``.venv/bin/jupyter lab``, ``runbook run``,
papermill and nbval started from the project's virtualenv all run the notebooks with
that virtualenv.  A spec holding an absolute path would tie every checkout on the
machine to the one that registered it last (and break them all once that checkout is
deleted).  :func:`ensure` (re)writes the spec when it is missing or differs; ``make
setup``, ``runbook run`` and the test suite call it.

    python -m runbook_lib.run.kernel      # register it (what ``make setup`` does)

:data:`MANAGER` is the kernel manager ``runbook run`` and the notebook tests give papermill: the
kernel talks to them over local IPC sockets (files in the Jupyter runtime directory) instead of TCP
ports on 127.0.0.1, which any local user could reach, so ipykernel has no "running over TCP without
encryption" warning to print into the run's output.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

NAME = "aurora-fallback-runbook"
MANAGER = "runbook_lib.run.kernel.IpcKernelManager"     # papermill/nbclient ``kernel_manager_class``
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


class IpcKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels listen on IPC sockets (transport 'ipc'), not TCP ports."""

    def __init__(self, **kw: object) -> None:
        import uuid

        from jupyter_core.paths import jupyter_runtime_dir
        kw.setdefault("transport", "ipc")
        # the sockets' path prefix: one per kernel (jupyter_client's default, 'kernel-ipc' in the working
        # directory, would be shared by kernels started side by side), in the user's private runtime dir
        runtime = Path(jupyter_runtime_dir())
        runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        kw.setdefault("ip", str(runtime / f"kernel-{uuid.uuid4().hex[:12]}-ipc"))
        super().__init__(**kw)


if __name__ == "__main__":
    print(f"kernel {NAME!r}: {ensure()}")
