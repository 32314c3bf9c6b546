"""Shared fixtures: the test suite's own lab instance (real MySQL servers + AWS endpoint).

The suite uses a lab of its own (name ``test``, ports 25306-25308 by default) so it never
disturbs the lab a person rehearses on.  Every test port lies below Linux's ephemeral range
(32768-60999): there, the local end of a client connection could take a lab's port first.
The lab is rebuilt fresh for each session unless RUNBOOK_TEST_LAB_REUSE=1 (handy while
iterating on one test).

``make test`` runs the suite on two pytest-xdist workers (``--dist loadgroup``).  Tests that
share a lab form one group, which one worker runs in file order: the session ``lab`` serves
test_lab_core and then the notebook pipeline (phase after phase), and the ``bidir`` lab serves
the consistency and heartbeat modules.  Every other module is a group of its own.  The lab
group goes first: it is the longest chain, and the other worker takes the rest meanwhile.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import support

REPO = Path(__file__).resolve().parents[1]

# Modules that share a lab, and so one worker (longest chain first); any other module is its own group.
SHARED_LABS = {
    "lab-test": ("tests/integration/lab/test_lab_core.py", "tests/notebooks/"),
    # phases 01-07 as Aurora 8.4 on a lab of its own: second in line, so the other worker starts it
    "lab-aurora84": ("tests/integration/run/test_pipeline_aurora84.py",),
    "lab-bidir": ("tests/integration/checks/test_consistency_lab.py", "tests/integration/checks/test_heartbeat_lab.py",
                  "tests/integration/checks/test_watch_lab.py", "tests/browser/test_jupyterlab.py",
                  "tests/integration/checks/test_consistency_scale_lab.py"),
}


def group_of(path: str) -> str:
    """The xdist group of a test file (path relative to the repository)."""
    for group, prefixes in SHARED_LABS.items():
        if path.startswith(prefixes):
            return group
    return path


def pytest_collection_modifyitems(config, items):
    """The lab groups first (the longest chain), each in file order; then the rest as collected."""
    order = list(SHARED_LABS)
    items.sort(key=lambda item: order.index(g) if (g := group_of(item.nodeid.split("::")[0])) in order
               else len(order))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Whole groups to a worker, in collection order.  (xdist's own ``--dist loadgroup`` reads
    its marks into node ids, which pytest 9.2 no longer lets it change: pytest-xdist#1386.)"""
    from xdist.scheduler import LoadScopeScheduling

    class LabGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid.split("::")[0])

    return LabGroupScheduling(config, log)


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

    name = support.lab_name()
    if not support.reuse():
        control.down(name, destroy=True, say=lambda *_: None)
    state = control.up(name, port_base=support.port_base(), persona_rows=support.rows(), aurora="3")
    params = inspect.write_params(state, tmp_path_factory.mktemp("lab") / "lab.yaml")
    yield LabHandle(state, params)
    if not support.keep():
        control.down(name, say=lambda *_: None)

