"""A lab instance of its own: up from nothing, down leaves no process behind."""
from __future__ import annotations

import subprocess

import pytest

from runbook_lib.lab import control
from tests.support import lab_name, port_base

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _lab_processes(name: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", f"lab-{name}|--lab-name {name}"], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "pgrep" not in line]


def test_up_from_nothing_then_down_leaves_nothing(monkeypatch):
    name, base = lab_name("lifecycle"), port_base("lifecycle")
    control.down(name, destroy=True, say=lambda *_: None)
    try:
        state = control.up(name, port_base=base, persona_rows=1000, say=lambda *_: None)
        assert all(i.is_running() for i in control.instances(state).values())
        assert control.endpoint_healthy(state)
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
