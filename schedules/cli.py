"""`campbot calendar`: what will be sent, to whom, when — at a terminal."""

from __future__ import annotations

import asyncio

import typer

from app.clock import SystemClock
from app.db import create_engine, create_sessionmaker
from app.settings import get_settings
from schedules.calendar import CalendarEntry
from schedules.calendar import calendar as planned


async def _entries(hours: float) -> list[CalendarEntry]:
    settings = get_settings()
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return await planned(
                session=session,
                now=SystemClock().now(),
                hours=hours,
                default_tz=settings.campbot_timezone,
            )
    finally:
        await engine.dispose()


def calendar(hours: float = typer.Option(24.0, help="how far ahead to look")) -> None:
    """列出未来 N 小时将发送的内容：时间、话术、发给谁（排期预演）。"""
    entries = asyncio.run(_entries(hours))
    if not entries:
        typer.echo(f"未来 {hours:g} 小时没有待发送的内容。")
        return
    for entry in entries:
        targets = (
            ", ".join(f"{t}（{c}）" for t, c in zip(entry.targets, entry.channels, strict=True))
            or "（没有可达的目标）"
        )
        typer.echo(f"{entry.local_time}  {entry.script_key}  → {targets}")
