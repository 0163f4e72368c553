"""Fixtures shared by the unit tests (those of every suite are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Api
from tests.hyperv_double.estate import HyperVEstate
from tests.unit.hyperv_estate import build, register
from whimbrel.config import Settings
from whimbrel.manager import Manager


@pytest.fixture
def estate() -> HyperVEstate:
    return build(ps51=True)


@pytest.fixture
def hv(settings: Settings, estate: HyperVEstate) -> Iterator[Api]:
    m = Manager(settings, opener=estate.open)
    m.start()
    api = Api(m)
    register(api, estate)
    yield api
    m.stop()
