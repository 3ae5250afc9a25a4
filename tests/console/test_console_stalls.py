"""The console holds the rule of issue 10: no request stalls the others for more than 100 ms.

One real `campbot serve` with an account made by `campbot users create`, and the console's
costly and hostile requests one after another — wrong and right passwords (argon2), runaway
templates previewed and saved, a 500 KB pack and an alias bomb imported, a regex-heavy
question in the test box, a 1 MB form field — while a second connection polls `/healthz`
every 10 ms. No poll may wait 100 ms, and no request gets a 500.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.hostile_templates import HOSTILE as HOSTILE_TEMPLATES
from tests.processes import CAMPBOT
from tests.stall import STALL_LIMIT_S, Hostile, ServedApp, stall_report

PASSWORD = "stall-test-password"
_CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')
_LOGIN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    app = ServedApp.start(tmp_path_factory.mktemp("stall-console"), env={})
    for command in (
        ["scripts", "import"],
        ["users", "create", "--name", "boss", "--role", "admin", "--password", PASSWORD],
    ):
        subprocess.run([*CAMPBOT, *command], env=app.env, check=True, capture_output=True)
    # What a process does once (compile statements, make the session key) is not a stall.
    with httpx.Client(base_url=app.base_url, trust_env=False, timeout=30) as warm:
        token = _LOGIN_CSRF.search(warm.get("/console/login").text)
        assert token is not None
        form = {"username": "nobody", "password": "x" * 12, "csrf_token": token.group(1)}
        warm.post("/console/login", data=form)
    yield app
    app.stop()


def _pack(entries: int) -> str:
    body = "{% for i in range(900) %}{{ i }}{% endfor %}"
    lines = ["scripts:"]
    for n in range(entries):
        lines += [
            f"  - key: bulk_{n}",
            "    title: 批量",
            "    category: bulk",
            "    msgtype: text",
            f"    body: '{body}'",
        ]
    return "\n".join(lines) + "\n"


def _cases() -> list[Hostile]:
    state: dict[str, str] = {}

    def sign_in(password: str) -> Hostile:
        async def send(client: httpx.AsyncClient) -> Any:
            form = await client.get("/console/login")
            token = _LOGIN_CSRF.search(form.text)
            assert token is not None
            data = {"username": "boss", "password": password, "csrf_token": token.group(1)}
            return await client.post("/console/login", data=data)

        return Hostile(
            f"sign in with {'the right' if password == PASSWORD else 'a wrong'} password", send
        )

    async def home(client: httpx.AsyncClient) -> Any:
        page = await client.get("/console/")
        found = _CSRF.search(page.text)
        assert found is not None, page.text[:300]
        state["csrf"] = found.group(1)
        return page

    def post(name: str, path: str, data: dict[str, str], **kw: Any) -> Hostile:
        async def send(client: httpx.AsyncClient) -> Any:
            headers = {"X-CSRF-Token": state["csrf"], "HX-Request": "true"}
            return await client.post(path, data=data, headers=headers, **kw)

        return Hostile(name, send)

    cases = [
        sign_in("wrong-one-1"),
        sign_in("wrong-two-2"),
        sign_in(PASSWORD),
        Hostile("今日", home),
    ]
    for name, (body, _) in HOSTILE_TEMPLATES.items():
        draft = {"title": "坏模板", "category": "daily", "msgtype": "text", "body": body}
        cases += [
            post(f"preview {name}", "/console/scripts/day1_todolist/preview", draft),
            post(f"save {name}", "/console/scripts/day1_todolist", draft),
        ]
    bomb = 'a: &a ["x","x"]\n' + "".join(f"b{i}: &b{i} [*a,*a]\n" for i in range(20))
    cases += [
        post(
            "import a 500 KB pack",
            "/console/scripts/_import/preview",
            {},
            files={"file": ("big.yaml", _pack(4000)[: 500 * 1024].encode(), "text/yaml")},
        ),
        post("import an alias bomb", "/console/scripts/_import/preview", {"text": bomb}),
        post("test a regex-heavy question", "/console/qa/test", {"question": "a" * 2048}),
        post("a 1 MB field", "/console/cohorts", {"name": "x" * 1_000_000}),
        post(
            "create an account",
            "/console/accounts",
            {
                "username": "lisi",
                "display_name": "李助教",
                "role": "assistant",
                "password": "lisi-password-1",
            },
        ),
        post(
            "change one's password",
            "/console/password",
            {"current": PASSWORD, "new": PASSWORD + "-2", "again": PASSWORD + "-2"},
        ),
    ]
    return cases


async def test_no_console_request_stalls_the_service(served: ServedApp) -> None:
    report = await stall_report(served, _cases())
    assert report.worst_s < STALL_LIMIT_S, report.describe()
    statuses = {o.name: o.status for o in report.outcomes}
    assert all(s is not None and s < 500 for s in statuses.values()), report.describe()
    assert statuses["sign in with the right password"] == 303, report.describe()
    assert statuses["create an account"] == 303, report.describe()
    assert statuses["change one's password"] == 303, report.describe()
    assert statuses["import a 500 KB pack"] == 422, report.describe()
    saves = [o for o in report.outcomes if o.name.startswith("save ")]
    assert all(o.status == 422 for o in saves), report.describe()
