"""A lab is refused ports in the kernel's ephemeral range, where a client socket can take them first."""
from __future__ import annotations

from pathlib import Path

import pytest

from runbook_lib.core.errors import LabError
from runbook_lib.lab import control

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@pytest.mark.skipif(not RANGE.exists(), reason="no Linux ephemeral port range to check against")
def test_a_port_base_in_the_ephemeral_range_is_refused_and_nothing_is_created(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_LAB_CACHE", str(tmp_path))
    low, _ = map(int, RANGE.read_text().split())
    with pytest.raises(LabError, match="ephemeral port range") as exc:
        control.up("ports-check", port_base=low + 100, say=lambda *_: None)
    assert f"below {low - 2}" in exc.value.hint
    assert not control.state_file("ports-check").exists()
    assert not any(tmp_path.iterdir())

