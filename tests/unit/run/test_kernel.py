"""The kernel spec runs whichever interpreter starts it, so checkouts do not fight over it."""
from __future__ import annotations

import json
import sys

from runbook_lib.run import kernel


def test_ensure_writes_a_portable_spec_and_is_idempotent(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    path = kernel.ensure()
    assert path == tmp_path / "kernels" / kernel.NAME / "kernel.json"
    data = json.loads(path.read_text())
    assert data["argv"][0] == "python" and "{connection_file}" in data["argv"]
    assert data["display_name"] == kernel.DISPLAY_NAME
    mtime = path.stat().st_mtime_ns
    assert kernel.ensure() == path and path.stat().st_mtime_ns == mtime     # unchanged: not rewritten


def test_a_spec_left_by_a_deleted_checkout_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    stale = tmp_path / "kernels" / kernel.NAME / "kernel.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"argv": ["/gone/.venv/bin/python", "-m", "ipykernel_launcher", "-f",
                                          "{connection_file}"], "display_name": "x", "language": "python"}))
    kernel.ensure()
    assert json.loads(stale.read_text())["argv"][0] == "python"


def test_jupyter_runs_the_spec_with_the_interpreter_that_starts_it(tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path))
    kernel.ensure()
    manager = KernelManager(kernel_name=kernel.NAME, kernel_spec_manager=KernelSpecManager())
    assert manager.format_kernel_cmd()[0] == sys.executable


def test_kernels_started_by_the_runbook_listen_on_their_own_ipc_sockets(tmp_path, monkeypatch):
    """No TCP port (so no 'running over TCP without encryption' warning), and no two kernels share sockets."""
    import importlib

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    module, _, name = kernel.MANAGER.rpartition(".")
    manager = getattr(importlib.import_module(module), name)
    first, second = manager(kernel_name=kernel.NAME), manager(kernel_name=kernel.NAME)
    assert first.transport == "ipc" and second.transport == "ipc"
    assert first.ip != second.ip and first.ip.startswith(str(tmp_path))


def test_a_phase_is_one_line():
    from runbook_lib.run.runner import PhaseResult, phase_line
    assert phase_line(PhaseResult("06_validation", "ok", 17.84)) == "06_validation            ok          17.8s"
    failed = phase_line(PhaseResult("06_validation", "failed", 3.0, "CheckFailed: lag\n  -> wait", 12))
    assert failed.endswith("3.0s  cell 12: CheckFailed: lag")
