"""`campbot scripts import|export`: the content pack at a terminal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import create_engine, create_sessionmaker, session_scope
from app.settings import get_settings
from scripts_library.errors import ScriptValidationError
from scripts_library.loader import DEFAULT_PACK, ImportReport, export_pack, import_pack

T = TypeVar("T")

scripts_cli = typer.Typer(help="话术库：导入、导出内容包（YAML）", no_args_is_help=True)


async def _in_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    engine = create_engine(get_settings().database_url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    try:
        return asyncio.run(_in_session(work))
    except ScriptValidationError as exc:
        typer.echo("内容包有问题，什么都没有写入：", err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem.field}：{problem.message}", err=True)
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:
        first_line = str(exc).splitlines()[0]
        typer.echo(f"数据库不可用（是否已运行 campbot migrate？）：{first_line}", err=True)
        raise typer.Exit(2) from None


@scripts_cli.command("import")
def import_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="YAML 文件或目录；默认导入内置内容包")
    ] = None,
    author: Annotated[str, typer.Option(help="记在版本历史里的修改人")] = "命令行导入",
) -> None:
    """Import scripts by key: new ones are created, changed ones get a new version."""
    chosen = paths or [DEFAULT_PACK]
    report: ImportReport = _run(
        lambda session: import_pack(session=session, paths=chosen, author=author)
    )
    for label, keys in (
        ("新建", report.created),
        ("更新", report.updated),
        ("未变", report.unchanged),
    ):
        typer.echo(f"{label} {len(keys)} 条" + (f"：{'、'.join(keys)}" if keys else ""))


@scripts_cli.command("export")
def export_command(
    directory: Annotated[Path, typer.Argument(help="写入的目录（按分类各写一个 YAML 文件）")],
) -> None:
    """Export every script to YAML files that `import` reads back unchanged."""
    written = _run(lambda session: export_pack(session=session, directory=directory))
    for path in written:
        typer.echo(f"已写入 {path}")
    if not written:
        typer.echo("话术库是空的，没有写入文件。")
