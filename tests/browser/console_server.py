"""The console's browser tests' stage: one real `uvicorn app.main:app` for the module, on its
first run against the built-in WeCom sandbox (no WECOM_* setting: the sender delivers to the
in-process fake, whose robots are registered over its HTTP control routes), with the demo
login it prints; Debian's Chromium driven by Playwright, launched as the H5 test launches it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

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
HOST = "127.0.0.1"
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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _env(database_url: str, base: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WECOM_", "DATABASE_URL", "ADMIN_TOKEN", "CAMPBOT_", "PUBLIC_"))
    }
    env.update(
        {
            "DATABASE_URL": database_url,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "PUBLIC_BASE_URL": base,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            "NO_PROXY": "*",
        }
    )
    return env


@contextlib.contextmanager
def served(workdir: Path) -> Iterator[Served]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's Chromium with "
            "`apt-get install -y --no-install-recommends chromium` (CI does)"
        )
    from app.migrations import upgrade

    database_url = f"sqlite+aiosqlite:///{workdir / 'campbot.db'}"
    upgrade(database_url)
    port = _free_port()
    base = f"http://{HOST}:{port}"
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", HOST, "--port", str(port)],
            cwd=workdir,
            env=_env(database_url, base),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            _wait_healthy(base, process, log_path)
            found = _LOGIN.search(log_path.read_text(errors="replace"))
            assert found is not None, "the first run printed no console login"
            yield Served(base, found.group(1), found.group(2), workdir)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()  # our own child, by its id
                process.wait(5)


def _wait_healthy(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited early:\n{log_path.read_text(errors='replace')}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=2, trust_env=False).status_code == 200:
                return
        time.sleep(0.2)
    pytest.fail(f"the server did not answer /healthz in 30 s:\n{log_path.read_text()}")


def shot(page: object, name: str) -> Path:
    """A full-page screenshot kept in test-artifacts/ (a PNG)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"console_{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path
