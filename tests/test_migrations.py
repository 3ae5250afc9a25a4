"""Migrations create the schema the models describe, on both backends, and go back down."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from app.db import Base, create_engine
from app.migrations import downgrade, upgrade
from tests.conftest import backend_params, postgres_url


@pytest.fixture(params=backend_params())
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    url = postgres_url()
    assert url is not None
    _run(url, _empty_public_schema)
    yield url


def _empty_public_schema(connection: Connection) -> None:
    connection.execute(text("DROP SCHEMA public CASCADE"))
    connection.execute(text("CREATE SCHEMA public"))


async def _run_async(url: str, work: Any) -> Any:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


def _run(url: str, work: Any) -> Any:
    return asyncio.run(_run_async(url, work))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _drift(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def test_upgrade_head_matches_models_and_downgrade_base_empties(empty_database: str) -> None:
    upgrade(empty_database)
    tables = _run(empty_database, _tables)
    assert {"inbox", "members", "groups", "group_memberships"} <= tables
    assert _run(empty_database, _drift) == []

    upgrade(empty_database)  # idempotent at head
    downgrade(empty_database)
    assert _run(empty_database, _tables) == {"alembic_version"}
