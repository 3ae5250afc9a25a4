"""`campbot users create|set-password|list`: console accounts at a terminal (the first
管理员 of a deployment is made here; the console's 账号 page makes the rest)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.common import Actor
from app.admin.errors import AdminError
from app.api.admin.errors import field_problems
from app.console import accounts
from app.console.models import ROLE_NAMES, ConsoleAccount, Role
from app.db import create_engine, create_sessionmaker, session_scope
from app.settings import get_settings

T = TypeVar("T")
CLI_ACTOR = Actor("命令行")

users_cli = typer.Typer(help="运营后台账号：创建、重设密码、列出", no_args_is_help=True)


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
    except ValidationError as exc:
        for problem in field_problems(exc.errors()):
            typer.echo(f"{problem.field}：{problem.message}", err=True)
        raise typer.Exit(2) from None
    except AdminError as exc:
        for problem in getattr(exc, "problems", None) or [None]:
            typer.echo(problem.message if problem else exc.message, err=True)
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:
        first_line = str(exc).splitlines()[0]
        typer.echo(f"数据库不可用（是否已运行 campbot migrate？）：{first_line}", err=True)
        raise typer.Exit(2) from None


def _password(given: str | None) -> str:
    if given is not None:
        return given
    return str(typer.prompt("密码（至少 10 个字符）", hide_input=True, confirmation_prompt=True))


@users_cli.command("create")
def create_command(
    name: Annotated[str, typer.Option("--name", help="登录用的用户名")],
    role: Annotated[
        Role, typer.Option("--role", help="admin 管理员 | operator 运营 | assistant 助教")
    ],
    display_name: Annotated[str | None, typer.Option(help="称呼；默认同用户名")] = None,
    password: Annotated[str | None, typer.Option(help="不给则提示输入（不进 shell 历史）")] = None,
    wecom_userid: Annotated[str | None, typer.Option(help="助教的企业微信 userid")] = None,
) -> None:
    """Create a console account (the first 管理员: `--role admin`)."""
    secret = _password(password)

    async def work(session: AsyncSession) -> accounts.AccountView:
        # Built here so `_run` turns a refused name into its Chinese message, not a traceback.
        body = accounts.AccountCreate(
            username=name,
            display_name=display_name or name,
            role=role,
            password=secret,
            wecom_userid=wecom_userid,
        )
        return await accounts.create_account(
            session=session, actor=CLI_ACTOR, now=datetime.now(UTC), **body.model_dump()
        )

    view = _run(work)
    typer.echo(f"已创建{ROLE_NAMES[view.account.role]}账号「{view.account.username}」。")


@users_cli.command("set-password")
def set_password_command(
    name: Annotated[str, typer.Argument(help="用户名")],
    password: Annotated[str | None, typer.Option(help="不给则提示输入")] = None,
) -> None:
    """Set an account's password (ends its sessions, lifts a lockout)."""
    chosen = _password(password)

    async def work(session: AsyncSession) -> None:
        found = await session.scalar(select(ConsoleAccount).where(ConsoleAccount.username == name))
        if found is None:
            raise AdminError(f"没有用户名为「{name}」的账号。")
        await accounts.set_password(
            session=session,
            actor=CLI_ACTOR,
            now=datetime.now(UTC),
            account_id=found.id,
            password=chosen,
        )

    _run(work)
    typer.echo(f"账号「{name}」的密码已重设，它的登录已全部退出。")


@users_cli.command("list")
def list_command() -> None:
    """List the console accounts."""

    async def work(session: AsyncSession) -> list[accounts.AccountView]:
        return await accounts.list_accounts(session=session)

    for view in _run(work):
        account = view.account
        state = "（已停用）" if account.disabled_at else ""
        typer.echo(
            f"{account.username}\t{ROLE_NAMES[account.role]}\t{account.display_name}{state}"
        )
