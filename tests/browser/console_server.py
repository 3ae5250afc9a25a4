"""The console's browser tests' stage: one real `uvicorn app.main:app` for the module, on its
first run against the built-in WeCom sandbox (no WECOM_* setting: the sender delivers to the
in-process fake, whose robots are registered over its HTTP control routes), with the demo
login it prints; Debian's Chromium driven by Playwright, launched as the H5 test launches it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.browser.stage import ARTIFACTS, PNG_SIGNATURE, require_chromium
from tests.browser.stage import served as serve_app

ADMIN_TOKEN = "console-browser-admin-token"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
_LOGIN = re.compile(r"演示账号 (\S+) 密码 (\S+)（")


@dataclass(frozen=True, slots=True)
class Served:
    base: str
    username: str
    password: str
    workdir: Path

    def admin(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """The admin API, for the set-up a scenario is not about."""
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return httpx.request(
            method,
            f"{self.base}/admin/api{path}",
            headers=headers,
            timeout=10,
            trust_env=False,
            **kwargs,  # type: ignore[arg-type]
        )

    def sandbox(self, path: str, payload: dict[str, object]) -> httpx.Response:
        """WeCom's side: the sandbox's control routes (add a robot to a group, …)."""
        url = f"{self.base}/wecom-sandbox/sandbox{path}"
        return httpx.post(url, json=payload, timeout=10, trust_env=False)


@contextlib.contextmanager
def served(workdir: Path) -> Iterator[Served]:
    """The app on its first run, with the console login it printed."""
    require_chromium()
    from app.migrations import upgrade

    database_url = f"sqlite+aiosqlite:///{workdir / 'campbot.db'}"
    upgrade(database_url)
    extra = {"ADMIN_TOKEN": ADMIN_TOKEN}
    with serve_app(workdir, database_url, extra, base_as_public_url=True) as base:
        found = _LOGIN.search((workdir / "server.log").read_text(errors="replace"))
        assert found is not None, "the first run printed no console login"
        yield Served(base, found.group(1), found.group(2), workdir)


def shot(page: object, name: str) -> Path:
    """A full-page screenshot kept in test-artifacts/ (a PNG)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"console_{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return path
