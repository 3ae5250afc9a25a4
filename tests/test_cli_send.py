"""`campbot send` as an operator runs it: a real process against `campbot sandbox` served
over HTTP, judged by its exit code and what it prints."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.migrations import upgrade
from app.wecom.errors import HINTS
from tests.processes import CAMPBOT, SandboxServer, campbot_env

# A send that hangs must fail the test, not the suite; well above a normal run (~1–2 s).
RUN_TIMEOUT_S = 45.0
# `--timeout` defaults to 60 s: a refusal must be reported long before that.
REFUSAL_WITHIN_S = 30.0
KEY_LINE = r"cli:[0-9a-f]{32}"
STARTUP_ROBOT = "robot-from-the-command-line"  # `campbot sandbox --robot …`


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-send")


@pytest.fixture(scope="module")
def database(workdir: Path) -> Path:
    path = workdir / "campbot.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="module")
def sandbox(workdir: Path) -> Iterator[SandboxServer]:
    server = SandboxServer.start(workdir, robots=[STARTUP_ROBOT])
    yield server
    server.stop()


@pytest.fixture
def fake(sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base_url, trust_env=False, timeout=10) as client:
        yield client


@pytest.fixture
def send(workdir: Path, database: Path, sandbox: SandboxServer) -> SendCommand:
    env = campbot_env(database_url=f"sqlite+aiosqlite:///{database}", api_base=sandbox.base_url)
    return SendCommand(env, workdir)


class SendCommand:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CAMPBOT, "send", *args],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )


def new_robot(fake: httpx.Client) -> str:
    key = f"robot-{uuid.uuid4().hex[:12]}"
    fake.post("/sandbox/robots", json={"key": key}).raise_for_status()
    return key


def robot_texts(fake: httpx.Client, key: str) -> list[str]:
    deliveries = fake.get("/sandbox/messages").json()["deliveries"]
    return [d["body"]["text"]["content"] for d in deliveries if d["target"] == key]


def outbox_rows(database: Path, target: str) -> list[tuple[str, str]]:
    with sqlite3.connect(database) as db:
        query = "SELECT key, status FROM outbox WHERE target = ? ORDER BY id"
        return list(db.execute(query, (target,)))


def outbox_size(database: Path) -> int:
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


def flat(output: str) -> str:
    """The text without the box rich draws around errors, and its line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


def test_a_sent_message_prints_its_key_and_sent(
    send: SendCommand, fake: httpx.Client, database: Path
) -> None:
    key = STARTUP_ROBOT
    result = send("--robot-key", key, "--text", "第1天任务：完成打卡")
    assert result.returncode == 0, result.stderr
    printed = re.fullmatch(rf"({KEY_LINE}): sent\n", result.stdout)
    assert printed, result.stdout
    assert outbox_rows(database, key) == [(printed[1], "sent")]
    assert robot_texts(fake, key) == ["第1天任务：完成打卡"]


@pytest.mark.parametrize("robot", ["removed", "unknown"])
def test_a_refused_robot_key_exits_1_naming_the_errcode_and_the_fix(
    send: SendCommand, fake: httpx.Client, database: Path, robot: str
) -> None:
    if robot == "removed":
        key = new_robot(fake)
        fake.delete(f"/sandbox/robots/{key}").raise_for_status()
    else:
        key = f"robot-never-added-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    result = send("--robot-key", key, "--text", "今晚 8 点直播")
    assert time.monotonic() - started < REFUSAL_WITHIN_S
    assert result.returncode == 1, result.stderr
    printed = re.fullmatch(rf"({KEY_LINE}): dead\n", result.stdout)
    assert printed, result.stdout
    assert "errcode 93000" in result.stderr
    assert HINTS[93000] in result.stderr  # 群机器人 webhook 地址无效，或机器人已被移出群…
    assert outbox_rows(database, key) == [(printed[1], "dead")]


def test_robot_text_over_2048_bytes_exits_2_and_writes_nothing(
    send: SendCommand, fake: httpx.Client, database: Path
) -> None:
    key = new_robot(fake)
    at_limit = "好" * 682 + "ab"  # 3 bytes a character: 2,048 bytes
    assert send("--robot-key", key, "--text", at_limit).returncode == 0
    result = send("--robot-key", key, "--text", at_limit + "!")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "无法发送：消息内容为 2049 字节，超过群机器人上限 2048 字节，请缩短。" in result.stderr
    assert [status for _, status in outbox_rows(database, key)] == ["sent"]
    assert robot_texts(fake, key) == [at_limit]


@pytest.mark.parametrize(
    "targets",
    [["--robot-key", "robot-x", "--user", "zhangsan"], []],
    ids=["robot-and-user", "none"],
)
def test_not_exactly_one_target_is_a_usage_error(
    send: SendCommand, database: Path, targets: list[str]
) -> None:
    before = outbox_size(database)
    result = send(*targets, "--text", "hi")
    assert result.returncode == 2
    assert "Usage: campbot send" in result.stderr
    error = "give exactly one of --robot-key, --chat-id, --customer-chat, --user"
    assert error in flat(result.stderr)
    assert outbox_size(database) == before
