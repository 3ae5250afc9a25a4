"""No callback, however hostile, holds the service: each case below is sent to the real
`campbot serve` while /healthz is polled every 10 ms, and no poll may wait 100 ms.

Before intake read only `Encrypt` ahead of the signature and bounded its parse, the first
case froze every route for about two minutes and the second for several seconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest

from tests.stall import (
    STALL_LIMIT_S,
    Hostile,
    Send,
    ServedApp,
    signed_callback,
    stall_report,
    unsigned_callback,
)
from tests.support import AES_KEY, TOKEN

MIB = 1024 * 1024
# The decrypted message of a 1 MiB body is about 760 KiB; these stay under that.
SIGNED_PLAINTEXT = 700 * 1024


def _fill(head: str, item: Callable[[int], str], tail: str, size: int) -> str:
    """`head`, then item(0), item(1), … as many as fit in `size` characters, then `tail`."""
    parts, used = [head], len(head) + len(tail)
    for i in itertools.count():
        piece = item(i)
        if used + len(piece) > size:
            break
        parts.append(piece)
        used += len(piece)
    return "".join(parts) + tail


CASES: dict[str, tuple[Callable[[], Send], set[int]]] = {
    # Finding 1 as reported: 1 MiB of repeated empty elements, unsigned.
    "unsigned 1 MiB <a/> x 262,140": (
        lambda: unsigned_callback(b"<xml>" + b"<a/>" * 262_140 + b"</xml>"),
        {400},
    ),
    "signed, 60,000 repeated children": (
        lambda: signed_callback("<xml>" + "<a>1</a>" * 60_000 + "</xml>"),
        {400},
    ),
    "unsigned 1 MiB of nesting": (lambda: unsigned_callback(b"<a>" * (MIB // 3)), {400}),
    "signed 700 KiB of nesting": (
        lambda: signed_callback("<xml>" * (SIGNED_PLAINTEXT // 5)),
        {400},
    ),
    "unsigned 1 MiB attribute list": (
        lambda: unsigned_callback(
            _fill("<xml><Encrypt", lambda i: f' a{i}=""', "/></xml>", MIB).encode()
        ),
        {400},
    ),
    "signed 700 KiB of distinct attributes": (
        lambda: signed_callback(
            _fill("<xml><a", lambda i: f' b{i}=""', "/></xml>", SIGNED_PLAINTEXT)
        ),
        {200, 400},
    ),
    "signed 700 KiB of namespace declarations": (
        lambda: signed_callback(
            _fill("<xml", lambda i: f' xmlns:n{i}="u:{i}"', "><n0:a/></xml>", SIGNED_PLAINTEXT)
        ),
        {200, 400},
    ),
    "signed, distinct fields up to the element limit": (
        lambda: signed_callback(
            "<xml>" + "".join(f"<F{i}>{i}</F{i}>" for i in range(4095)) + "</xml>"
        ),
        {200},
    ),
    "unsigned 1 MiB Encrypt": (
        lambda: unsigned_callback(
            _fill("<xml><Encrypt>", lambda _: "QUJD", "</Encrypt></xml>", MIB).encode()
        ),
        {403},
    ),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    app = ServedApp.start(
        tmp_path_factory.mktemp("stall"),
        env={"WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": AES_KEY},
    )
    yield app
    app.stop()


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_callback_does_not_stall_the_service(name: str, served: ServedApp) -> None:
    build, statuses = CASES[name]
    report = await stall_report(served, [Hostile(name, build())])
    assert report.worst_s < STALL_LIMIT_S, report.describe()
    (outcome,) = report.outcomes
    assert outcome.status in statuses, report.describe()
