"""`campbot`: the same operations as the admin API, at a terminal."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from app.channels.reach import Channel, Destination
from app.first_run import SANDBOX_AGENT_ID, SANDBOX_CORP_ID, SANDBOX_SECRET, wecom_unconfigured
from app.logging import configure_logging
from app.settings import Settings, describe_settings_error, get_settings

# No rich tracebacks: they print local variables, settings among them.
cli = typer.Typer(
    help="CampBot 训练营助手",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        typer.echo("CampBot cannot start:\n" + describe_settings_error(exc), err=True)
        raise typer.Exit(2) from None


@cli.command()
def migrate(revision: str = typer.Argument("head", help="Alembic revision to upgrade to")) -> None:
    """Create or upgrade the database schema (DATABASE_URL)."""
    from app.migrations import upgrade

    settings = _settings_or_exit()
    configure_logging()
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}: {settings.database_url.split('@')[-1]}")


@cli.command()
def backup(
    to: Annotated[Path, typer.Argument(help="the file to write (it must not exist yet)")],
) -> None:
    """Copy the SQLite database while CampBot runs (PostgreSQL: use pg_dump)."""
    from app.backup import BackupError, backup_sqlite

    settings = _settings_or_exit()
    try:
        pages = backup_sqlite(database_url=settings.database_url, to=to)
    except (BackupError, OSError, sqlite3.Error) as exc:
        typer.echo(f"backup failed: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"backed up {pages} pages to {to}")


@cli.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    workers: int = typer.Option(
        1, min=1, help="server processes on the port (one leads the scheduler)"
    ),
) -> None:
    """Run the HTTP service (callbacks, admin API, H5 pages)."""
    import uvicorn

    settings = _settings_or_exit()
    configure_logging()
    if workers > 1 and wecom_unconfigured(settings):
        typer.echo(
            "CampBot cannot start: --workers needs the WECOM_* settings (on the built-in "
            "sandbox each worker would have a WeCom of its own)",
            err=True,
        )
        raise typer.Exit(2)
    if wecom_unconfigured(settings):
        typer.echo(
            f"note: no WECOM_* settings: CampBot runs against its built-in WeCom sandbox; see "
            f"http://{host}:{port}/wecom-sandbox/sandbox/messages for what WeCom would receive"
        )
    elif not settings.callback_enabled:
        typer.echo("note: WECOM_* callback settings are unset; /wecom/callback answers 503")
    uvicorn.run("app.main:app", host=host, port=port, workers=workers, log_config=None)


@cli.command()
def send(
    text: str = typer.Option(..., "--text", help="the message text"),
    robot_key: str | None = typer.Option(None, "--robot-key", help="a group robot's webhook key"),
    chat_id: str | None = typer.Option(None, "--chat-id", help="an app chat (internal group)"),
    customer_chat: str | None = typer.Option(
        None, "--customer-chat", help="a customer group; needs --owner"
    ),
    owner: str | None = typer.Option(None, "--owner", help="the customer group's owner userid"),
    user: str | None = typer.Option(None, "--user", help="an internal member's userid"),
    timeout: float = typer.Option(60.0, help="seconds to wait for a final outcome"),
) -> None:
    """Send one text through the outbox to test a channel (exit 1 when WeCom refuses it)."""
    import asyncio
    from datetime import timedelta

    from sqlalchemy.exc import SQLAlchemyError

    from app.channels.messages import OutMessage
    from app.outbound_cli import NotConfigured, send_one
    from app.wecom.errors import UndeliverableError

    destination = _destination(
        robot_key=robot_key, chat_id=chat_id, customer_chat=customer_chat, owner=owner, user=user
    )
    settings = _settings_or_exit()
    try:
        outcome = asyncio.run(
            send_one(
                settings,
                destination=destination,
                message=OutMessage("text", text),
                wait=timedelta(seconds=timeout),
            )
        )
    except (NotConfigured, UndeliverableError) as exc:
        typer.echo(f"无法发送：{exc}", err=True)
        raise typer.Exit(2) from None
    except SQLAlchemyError as exc:
        typer.echo(
            f"数据库不可用（是否已运行 campbot migrate？）：{type(exc).__name__}: "
            f"{str(exc).splitlines()[0]}",
            err=True,
        )
        raise typer.Exit(2) from None
    typer.echo(
        f"{outcome.key}: {outcome.status}" + (f" msgid={outcome.msgid}" if outcome.msgid else "")
    )
    if outcome.status == "sent":
        return
    typer.echo(f"errcode {outcome.errcode}: {outcome.error}", err=True)
    raise typer.Exit(1 if outcome.status == "dead" else 3)


def _destination(
    *,
    robot_key: str | None,
    chat_id: str | None,
    customer_chat: str | None,
    owner: str | None,
    user: str | None,
) -> Destination:
    chosen = [
        name
        for name, value in (
            ("--robot-key", robot_key),
            ("--chat-id", chat_id),
            ("--customer-chat", customer_chat),
            ("--user", user),
        )
        if value
    ]
    if len(chosen) != 1:
        raise typer.BadParameter(
            "give exactly one of --robot-key, --chat-id, --customer-chat, --user"
        )
    if robot_key:
        return Destination(Channel.ROBOT, robot_key)
    if chat_id:
        return Destination(Channel.APPCHAT, chat_id)
    if customer_chat:
        if not owner:
            raise typer.BadParameter("--customer-chat needs --owner (the group owner's userid)")
        return Destination(Channel.CUSTOMER_GROUP, customer_chat, sender=owner)
    assert user is not None
    return Destination(Channel.APP_MESSAGE, user)


@cli.command()
def sender() -> None:
    """Run the outbox sender alone (the server runs one too; they never send a row twice)."""
    import asyncio

    from app.outbound_cli import NotConfigured, run_sender

    settings = _settings_or_exit()
    configure_logging()
    try:
        asyncio.run(run_sender(settings))
    except NotConfigured as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@cli.command()
def worker(
    metrics_port: int | None = typer.Option(
        None,
        help="serve this process's Prometheus metrics on this port (no token: bind it "
        "where only Prometheus reaches)",
    ),
    metrics_host: str = typer.Option("127.0.0.1", help="interface for --metrics-port"),
) -> None:
    """Run the event handlers of servers started with CAMPBOT_HANDLERS=worker (any number)."""
    from app.main import CAPABILITIES
    from app.settings import HandlersMode
    from app.worker import run_until_signalled

    settings = _settings_or_exit()
    configure_logging()
    if wecom_unconfigured(settings):
        typer.echo(
            "CampBot cannot start: a worker needs the WECOM_* settings (on the built-in "
            "sandbox each process would have a WeCom of its own)",
            err=True,
        )
        raise typer.Exit(2)
    if settings.campbot_handlers is not HandlersMode.WORKER:
        typer.echo("note: only servers with CAMPBOT_HANDLERS=worker leave their events to workers")

    metrics_at = None if metrics_port is None else (metrics_host, metrics_port)
    run_until_signalled(settings=settings, capabilities=CAPABILITIES, metrics_at=metrics_at)


sandbox_cli = typer.Typer(
    help="The built-in WeCom sandbox: serve it, or play a demo camp against it.",
    invoke_without_command=True,
)
cli.add_typer(sandbox_cli, name="sandbox")


@sandbox_cli.callback(invoke_without_command=True)
def sandbox(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(9000, help="port to listen on"),
    robot: Annotated[list[str] | None, typer.Option(help="register a group robot key")] = None,
    user: Annotated[list[str] | None, typer.Option(help="register a member userid")] = None,
) -> None:
    """Run the WeCom sandbox: a stateful fake of qyapi.weixin.qq.com for trials and demos."""
    if ctx.invoked_subcommand is not None:
        return
    from app.wecom_sandbox.server import serve_sandbox
    from app.wecom_sandbox.state import SandboxState

    settings = _settings_or_exit()
    configure_logging()
    corp_id = settings.wecom_corp_id or SANDBOX_CORP_ID
    agent_id = settings.wecom_agent_id or SANDBOX_AGENT_ID
    secret = settings.wecom_secret.get_secret_value() if settings.wecom_secret else SANDBOX_SECRET
    state = SandboxState(corp_id=corp_id, apps={agent_id: secret})
    for key in robot or ():
        state.add_robot(key)
    for userid in user or ():
        state.add_user(userid)
    typer.echo(
        f"WeCom sandbox on http://{host}:{port} (corp {corp_id}, agent {agent_id}); "
        f"point CampBot at it with WECOM_API_BASE=http://{host}:{port}"
    )
    serve_sandbox(host, port, state)


def _add_subcommands() -> None:
    # Imported here: the domain packages are wired in only at the edge.
    from app.cli.demo import demo_command
    from app.cli.users import users_cli
    from schedules.cli import calendar
    from scripts_library.cli import scripts_cli

    cli.add_typer(scripts_cli, name="scripts", help="话术库：导入或导出 content/*.yaml")
    cli.add_typer(users_cli, name="users", help="运营后台账号：创建、重设密码、列出")
    cli.command()(calendar)
    sandbox_cli.command("demo")(demo_command)


_add_subcommands()


def main() -> None:
    cli()
