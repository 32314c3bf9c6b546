"""A lab instance of its own: up from nothing, down leaves no process behind."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from runbook_lib.core.errors import LabError
from runbook_lib.lab import control, inspect
from tests.support import lab_name, port_base

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _lab_processes(name: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", f"lab-{name}|--lab-name {name}"], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


def test_up_from_nothing_then_down_leaves_nothing(monkeypatch, tmp_path):
    name, base = lab_name("lifecycle"), port_base("lifecycle")
    control.down(name, destroy=True, say=lambda *_: None)
    try:
        state = control.up(name, port_base=base, persona_rows=1000, say=lambda *_: None)
        assert all(i.is_running() for i in control.instances(state).values())
        assert control.endpoint_healthy(state)
        # --aurora's default: the Aurora closest to the lab's own MySQL, remembered and played
        assert state.aurora == control.default_aurora(state) == \
            ("8.4" if control.mysqld_major(state) >= (8, 4) else "3")
        assert control.load_state(name).aurora == state.aurora
        frame = inspect.status_frame(state).set_index("server")
        assert f"as Aurora {control.aurora_version(state)}" in frame.loc["aurora", "version"]
        assert f"plays Aurora {state.aurora}" in frame.loc["aws endpoint", "version"]
        params = yaml.safe_load(inspect.write_params(state, tmp_path / "lab.yaml").read_text())
        assert params["aurora_parameter_group_family"] == f"aurora-mysql{'8.4' if state.aurora == '8.4' else '8.0'}"
        with pytest.raises(LabError, match="reset --aurora"):
            control.up(name, aurora="3" if state.aurora == "8.4" else "8.4", say=lambda *_: None)
        control.down(name, say=lambda *_: None)
        assert _lab_processes(name) == []
        assert not control.endpoint_healthy(state)
        # the data survived: a second up starts, it does not rebuild
        said: list[str] = []
        control.up(name, say=said.append)
        assert not any("creating" in s for s in said)
    finally:
        control.down(name, destroy=True, say=lambda *_: None)
    assert _lab_processes(name) == []
