"""Stats fixtures: the admin client (ADMIN_TOKEN set) on the test clock and database."""

from __future__ import annotations

import pytest

from app.settings import Settings
from tests.admin.conftest import Admin, admin_settings
from tests.support import AppHarness


@pytest.fixture
def settings() -> Settings:
    return admin_settings()


@pytest.fixture
def admin(harness: AppHarness) -> Admin:
    return Admin(harness)
