"""Shared fixtures: the test suite's own lab instance (real MySQL servers + AWS endpoint).

The suite uses a lab of its own (name ``test``, ports 25306-25308 by default) so it
never disturbs the lab a person rehearses on.  Every test port lies below Linux's ephemeral
range (32768-60999): there, a client socket's local port could take a lab's port first.  It is rebuilt fresh for each session
unless RUNBOOK_TEST_LAB_REUSE=1 (handy while iterating on one test).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LabHandle:
    state: object            # runbook_lib.lab.control.LabState
    params_file: Path        # parameters file pointing at this lab instance

    @property
    def instances(self):
        from runbook_lib.lab.control import instances
        return instances(self.state)

    def root(self, name: str):
        """A labroot (superuser) PyMySQL connection to 'onprem' or 'aurora', DictCursor, autocommit."""
        return self.instances[name].connect()

    def password(self, key: str) -> str:
        return self.state.passwords[key]

    @property
    def endpoint_url(self) -> str:
        return self.state.endpoint_url

    def aws(self, service: str):
        import boto3
        return boto3.client(service, region_name="us-east-1", endpoint_url=self.endpoint_url,
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="session")
def lab(tmp_path_factory) -> LabHandle:
    from runbook_lib.lab import control, inspect

    name = os.environ.get("RUNBOOK_TEST_LAB", "test")
    base = int(os.environ.get("RUNBOOK_TEST_PORT_BASE", "25306"))
    rows = int(os.environ.get("RUNBOOK_TEST_ROWS", "50000"))
    if os.environ.get("RUNBOOK_TEST_LAB_REUSE") != "1":
        control.down(name, destroy=True, say=lambda *_: None)
    state = control.up(name, port_base=base, persona_rows=rows)
    params = inspect.write_params(state, tmp_path_factory.mktemp("lab") / "lab.yaml")
    yield LabHandle(state, params)
    if os.environ.get("RUNBOOK_TEST_LAB_KEEP") != "1":
        control.down(name, say=lambda *_: None)

