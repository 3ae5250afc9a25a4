"""Settings: exactly the ARCHITECTURE §4 variables, and clear refusals naming the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from app.settings import DEFAULT_DATABASE_URL, Settings, describe_settings_error
from tests.support import AES_KEY

VARIABLES = (
    "CAMPBOT_HANDLERS",
    "WECOM_CORP_ID",
    "WECOM_AGENT_ID",
    "WECOM_SECRET",
    "WECOM_TOKEN",
    "WECOM_ENCODING_AES_KEY",
    "WECOM_API_BASE",
    "DATABASE_URL",
    "ADMIN_TOKEN",
    "PUBLIC_BASE_URL",
    "CAMPBOT_TIMEZONE",
    "WECOM_MASS_SEND_QUOTA",
    "METRICS_TOKEN",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]  # no stray .env


def _refusal(**env: str) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(**env)  # type: ignore[arg-type]
    return describe_settings_error(caught.value)


def test_defaults() -> None:
    settings = Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.wecom_api_base == "https://qyapi.weixin.qq.com"
    assert settings.public_base_url == "http://localhost:8000"
    assert settings.campbot_timezone == "Asia/Shanghai"
    assert not settings.callback_enabled
    assert settings.admin_token is None
    assert settings.metrics_token is None  # /metrics answers 404
    assert settings.campbot_handlers == "inline"  # handlers run in the server


def test_reads_exactly_the_documented_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "WECOM_CORP_ID": "wwcorp",
        "WECOM_AGENT_ID": "1000002",
        "WECOM_SECRET": "s",
        "WECOM_TOKEN": "t",
        "WECOM_ENCODING_AES_KEY": AES_KEY,
        "WECOM_API_BASE": "http://127.0.0.1:9/",
        "DATABASE_URL": "sqlite+aiosqlite:///x.db",
        "ADMIN_TOKEN": "adm-0123456789abcdef",
        "PUBLIC_BASE_URL": "https://camp.example/",
        "CAMPBOT_TIMEZONE": "UTC",
        "WECOM_MASS_SEND_QUOTA": "week_7",
        "METRICS_TOKEN": "metrics-0123456789abcdef",
        "CAMPBOT_HANDLERS": "worker",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.wecom_agent_id == 1000002
    assert settings.wecom_mass_send_quota == "week_7"
    assert settings.campbot_handlers == "worker"
    assert settings.wecom_api_base == "http://127.0.0.1:9"
    assert settings.public_base_url == "https://camp.example"
    assert settings.callback_enabled
    assert settings.metrics_token is not None
    assert settings.metrics_token.get_secret_value() == "metrics-0123456789abcdef"
    assert {f.validation_alias for f in Settings.model_fields.values()} == set(VARIABLES)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WECOM_TOKEN": "t"}, "WECOM_CORP_ID, WECOM_ENCODING_AES_KEY"),
        ({"WECOM_CORP_ID": "c", "WECOM_TOKEN": "t"}, "WECOM_ENCODING_AES_KEY"),
        ({"WECOM_ENCODING_AES_KEY": AES_KEY}, "WECOM_CORP_ID, WECOM_TOKEN"),
        ({"WECOM_TOKEN": "t", "WECOM_ENCODING_AES_KEY": AES_KEY}, "WECOM_CORP_ID"),
    ],
)
def test_half_set_callback_settings_are_refused(env: dict[str, str], named: str) -> None:
    assert f"set {named} too" in _refusal(**env)


@pytest.mark.parametrize("key", [AES_KEY[:42], AES_KEY + "x", AES_KEY[:42] + "=", ""])
def test_aes_key_must_be_43_letters_or_digits(key: str) -> None:
    if not key:  # blank means unset, and then the other two are half-set
        assert "WECOM_ENCODING_AES_KEY" in _refusal(
            WECOM_CORP_ID="c", WECOM_TOKEN="t", WECOM_ENCODING_AES_KEY=key
        )
        return
    message = _refusal(WECOM_CORP_ID="c", WECOM_TOKEN="t", WECOM_ENCODING_AES_KEY=key)
    assert message.startswith("WECOM_ENCODING_AES_KEY: must be exactly 43")


def test_corp_id_and_secret_alone_are_a_sending_only_setup() -> None:
    settings = Settings(WECOM_CORP_ID="wwcorp", WECOM_SECRET="s")  # type: ignore[call-arg]
    assert not settings.callback_enabled


def test_bad_timezone_and_agent_id_name_their_variable() -> None:
    assert _refusal(CAMPBOT_TIMEZONE="Mars/Base").startswith("CAMPBOT_TIMEZONE:")
    assert _refusal(WECOM_AGENT_ID="abc").startswith("WECOM_AGENT_ID:")


def _serve_output(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[int, str]:
    """`campbot serve` with these variables set: its exit code and what it printed."""
    from app import settings as settings_module
    from app.cli import cli

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings_module.get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["serve"])
    finally:
        settings_module.get_settings.cache_clear()
    return result.exit_code, result.output


def test_cli_refuses_to_serve_with_a_readable_message(monkeypatch: pytest.MonkeyPatch) -> None:
    exit_code, output = _serve_output(monkeypatch, WECOM_TOKEN="t")
    assert exit_code == 2
    assert "CampBot cannot start" in output
    assert "WECOM_CORP_ID" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("token", ["change-me", "x" * 15])
def test_a_short_admin_token_is_refused_outside_the_sandbox(token: str) -> None:
    message = _refusal(WECOM_CORP_ID="wwcorp", WECOM_SECRET="s", ADMIN_TOKEN=token)
    assert message.startswith(f"ADMIN_TOKEN: too short ({len(token)} characters)")
    assert "16" in message


def test_the_sandbox_trial_takes_a_short_admin_token_and_16_characters_do_everywhere() -> None:
    sandbox = Settings(ADMIN_TOKEN="change-me")  # type: ignore[call-arg]
    assert sandbox.admin_token is not None
    assert not sandbox.wecom_configured
    production = Settings(  # type: ignore[call-arg]
        WECOM_CORP_ID="wwcorp", WECOM_SECRET="s", ADMIN_TOKEN="x" * 16
    )
    assert production.admin_token is not None


def test_cli_refuses_to_serve_with_a_short_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    exit_code, output = _serve_output(
        monkeypatch, WECOM_CORP_ID="wwcorp", WECOM_SECRET="s", ADMIN_TOKEN="change-me"
    )
    assert exit_code == 2
    assert "CampBot cannot start" in output
    assert "ADMIN_TOKEN: too short (9 characters)" in output


async def test_the_app_refuses_to_start_with_a_short_admin_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`uvicorn app.main:app` reads its settings in the lifespan: the same refusal."""
    from app import settings as settings_module
    from app.main import StartupRefused, create_app

    monkeypatch.setenv("WECOM_CORP_ID", "wwcorp")
    monkeypatch.setenv("WECOM_SECRET", "s")
    monkeypatch.setenv("ADMIN_TOKEN", "change-me")
    settings_module.get_settings.cache_clear()
    app = create_app(sandbox_when_unconfigured=True)
    try:
        with pytest.raises(StartupRefused, match=r"ADMIN_TOKEN: too short \(9 characters\)"):
            async with app.router.lifespan_context(app):
                pass
    finally:
        settings_module.get_settings.cache_clear()


def test_the_mass_send_quota_mode_defaults_to_the_days_of_the_month_and_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().wecom_mass_send_quota == "month_days"
    monkeypatch.setenv("WECOM_MASS_SEND_QUOTA", "monthly")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "WECOM_MASS_SEND_QUOTA" in describe_settings_error(refused.value)


def test_short_metrics_token_is_refused_naming_it() -> None:
    message = _refusal(WECOM_CORP_ID="wwcorp", WECOM_SECRET="s", METRICS_TOKEN="short")
    assert "METRICS_TOKEN" in message
    assert "16" in message


def test_handlers_are_inline_or_in_workers_and_anything_else_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CAMPBOT_HANDLERS", "elsewhere")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "CAMPBOT_HANDLERS" in describe_settings_error(refused.value)
