"""`campbot`: the same operations as the admin API, at a terminal."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from app.logging import configure_logging
from app.settings import Settings, describe_settings_error, get_settings

cli = typer.Typer(help="CampBot 训练营助手", no_args_is_help=True, add_completion=False)


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
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
) -> None:
    """Run the HTTP service (callbacks, admin API, H5 pages)."""
    import uvicorn

    settings = _settings_or_exit()
    configure_logging()
    if not settings.callback_enabled:
        typer.echo("note: WECOM_* callback settings are unset; /wecom/callback answers 503")
    uvicorn.run("app.main:app", host=host, port=port, log_config=None)


def main() -> None:
    cli()
