"""WeCom's passive reply: a text message carried in the HTTP answer to a callback.

`PassiveReply` is the hand-off between a callback that waits a short while and the handler
that may answer: exactly one of them ends up owning the reply. The handler claims it (inside
its transaction, only while the callback still waits); the dispatcher settles it once that
transaction committed or failed; the callback carries the text only after a commit. A
callback that stops waiting first closes the slot, and every later claim is refused, so the
handler sends its reply another way. All of it runs on one event loop: each step is atomic.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from datetime import datetime

logger = logging.getLogger(__name__)


class _State(enum.Enum):
    OPEN = "open"  # the callback waits; a handler may claim
    CLAIMED = "claimed"  # a handler owns the reply; its commit decides
    CLOSED = "closed"  # the callback answered without a reply; claims are refused
    SETTLED = "settled"  # the dispatcher finished: the callback has its answer
    ABANDONED = "abandoned"  # the request went away after a claim


class PassiveReply:
    """One waiting callback's offer to carry a text reply to the member who wrote."""

    def __init__(self) -> None:
        self._state = _State.OPEN
        self._text: str | None = None
        self._answer: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

    def claim(self, text: str) -> bool:
        """Handler side, before its commit: True if this reply is the callback's to carry
        (then the handler must not send it otherwise)."""
        if self._state is not _State.OPEN:
            return False
        self._state, self._text = _State.CLAIMED, text
        return True

    def close(self) -> None:
        """Nobody will wait (the run was queued behind a backlog): refuse every claim."""
        if self._state is _State.OPEN:
            self._state = _State.CLOSED
            self._resolve(None)

    def settle(self, *, committed: bool) -> None:
        """Dispatcher side, once the event's transaction committed (or did not): hand the
        claimed text to the callback only after a commit. Without one the claim is void
        and the event runs again later, with no callback waiting, so the handler's other
        way sends it."""
        if self._state is _State.ABANDONED and committed:
            # The request was cancelled (server shutdown, client gone) after the claim.
            logger.error("passive reply lost, the callback request is gone: %r", self._text)
        if self._state in (_State.OPEN, _State.CLAIMED):
            self._resolve(self._text if committed and self._state is _State.CLAIMED else None)
            self._state = _State.SETTLED

    async def wait(self, budget_s: float) -> str | None:
        """Callback side: the reply text to carry, or None to answer `success`.

        Waits up to `budget_s` for the run to settle; then closes the slot, unless a
        handler already claimed it: the claim happened within the budget and only the
        commit is left, so the answer waits for it (a bounded tail, not a new budget).
        """
        try:
            try:
                async with asyncio.timeout(budget_s):
                    return await asyncio.shield(self._answer)
            except TimeoutError:
                self.close()
                return await self._answer
        except asyncio.CancelledError:
            if self._state is _State.CLAIMED:
                self._state = _State.ABANDONED
            else:
                self.close()
            raise

    def _resolve(self, text: str | None) -> None:
        if not self._answer.done():
            self._answer.set_result(text)


def _cdata(value: str) -> str:
    # "]]>" cannot sit inside one CDATA section; split it across two.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply_xml(*, to_user: str, from_user: str, content: str, at: datetime) -> str:
    """The plaintext of a passive text reply (before encryption): to the member who wrote,
    from the corp that received the callback."""
    return (
        f"<xml><ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{int(at.timestamp())}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(content)}</Content></xml>"
    )
