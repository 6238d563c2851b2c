"""Every cluster test runs with the admission policies in force, as a real install has them."""

from __future__ import annotations

import pytest

from tests.support.fixtures import Admission


@pytest.fixture(autouse=True)
def _admission_in_force(admission: Admission) -> Admission:
    return admission
