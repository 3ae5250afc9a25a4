"""What the browser tests share: Debian's Chromium as Playwright launches it, the real app
served by `uvicorn app.main:app` on a free loopback port until the test is done, the camp's
today, and a PNG to upload.

Chromium comes from Debian (`apt-get install -y --no-install-recommends chromium`), not from
Playwright's download; without it a browser test fails, saying so (CI installs it).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from tests.images import png_bytes
from tests.processes import HOST, UVICORN, ServerProcess, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

TZ = "Asia/Shanghai"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's Chromium with "
            "`apt-get install -y --no-install-recommends chromium` (CI does)"
        )


def launch(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )


def camp_today(now: datetime | None = None) -> date:
    """The camp's date in Shanghai now (or at `now`): its days turn at 04:00."""
    return (
        (now or datetime.now(ZoneInfo(TZ))).astimezone(ZoneInfo(TZ)) - timedelta(hours=4)
    ).date()


def png_file(path: Path, size: tuple[int, int] = (320, 240)) -> Path:
    """A PNG written to `path`, for a file input."""
    path.write_bytes(png_bytes(size))
    return path


def server_env(database_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: this database, no inherited CampBot or WeCom setting (so
    it runs on the built-in sandbox), and no proxy between it and 127.0.0.1."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WECOM_", "DATABASE_URL", "ADMIN_TOKEN", "CAMPBOT_", "PUBLIC_"))
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            "NO_PROXY": "*",
            **(extra or {}),
        }
    )
    return env


@contextlib.contextmanager
def served(
    workdir: Path,
    database_url: str,
    extra_env: dict[str, str] | None = None,
    *,
    base_as_public_url: bool = False,
) -> Iterator[str]:
    """`uvicorn app.main:app` on a free loopback port, its working directory `workdir` (so
    uploads land in `workdir/uploads`, its log in `workdir/server.log`); answers the base
    URL once /healthz is 200, and stops the server (SIGINT, then kill) afterwards.
    `base_as_public_url`: the links the app makes start with that base."""
    port = free_port()
    base = f"http://{HOST}:{port}"
    extra = {**(extra_env or {}), **({"PUBLIC_BASE_URL": base} if base_as_public_url else {})}
    env = server_env(database_url, extra)
    server = ServerProcess.start(workdir, env=env, port=port, name="server", command=UVICORN)
    try:
        yield server.base_url
    finally:
        server.process.stop(signal.SIGINT)
