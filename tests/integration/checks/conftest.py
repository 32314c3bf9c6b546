"""The bidir lab's fixtures for the modules of this folder (one lab, replicating both ways, shared
by them all: tests/conftest.py keeps them on one worker)."""
from __future__ import annotations

import pytest

from tests.support import bidir_lab


@pytest.fixture(scope="module")
def two_way(request):
    return bidir_lab(request)


@pytest.fixture
def servers(two_way):
    src, aur = two_way.server("onprem"), two_way.server("aurora")
    yield src, aur
    src.close()
    aur.close()
