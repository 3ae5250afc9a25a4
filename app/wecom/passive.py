"""WeCom's passive reply: a text message carried in the HTTP answer to a callback.

`PassiveReply` is the hand-off between a callback that waits a short while and the handler
that may answer: exactly one way carries the reply. The handler claims it (inside its
transaction, only while the callback still waits); the dispatcher settles it once that
transaction committed or failed; the callback carries the text only after a commit. WeCom
drops an answer later than 5 s, so the callback's whole wait is bounded: if it stops
waiting after a claim (its deadline passed while the commit was slow, or the request was
cancelled), the slot is abandoned and the dispatcher, once committed, sends the claimed
reply another way (`carried()` tells it which). All of it runs on one event loop: each
transition below is one synchronous step, so callback and dispatcher never both win.

    OPEN ─claim─▶ CLAIMED ─settle(commit)─▶ COMMITTED ─callback takes─▶ CARRIED
    OPEN ─close─▶ CLOSED, OPEN ─settle─▶ SETTLED  (nothing to carry; later claims refused)
    CLAIMED ─reopen─▶ OPEN                         (rolled back, run again while it waits)
    CLAIMED ─settle(no commit)─▶ SETTLED          (void: the event runs again later)
    CLAIMED or COMMITTED ─callback gone─▶ ABANDONED (the dispatcher sends the reply)
"""

from __future__ import annotations

import asyncio
import enum
from datetime import datetime


class _State(enum.Enum):
    OPEN = "open"  # the callback waits; a handler may claim
    CLAIMED = "claimed"  # a handler owns the reply; its commit decides
    CLOSED = "closed"  # no claim, and none will be accepted: the callback answers without
    SETTLED = "settled"  # the run ended with nothing for the callback to carry
    COMMITTED = "committed"  # the claimed reply committed; handed to the callback
    CARRIED = "carried"  # the callback took the reply into its HTTP answer
    ABANDONED = "abandoned"  # the callback stopped waiting after the claim


class PassiveReply:
    """One waiting callback's offer to carry a text reply to the member who wrote."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self._state = _State.OPEN
        self._text: str | None = None
        # Wakes the callback once the run settled (or the slot closed).
        self._settled: asyncio.Future[None] = loop.create_future()
        # Tells the dispatcher whether the callback carried a committed claim.
        self._carried: asyncio.Future[bool] = loop.create_future()

    # Handler side.

    def claim(self, text: str) -> bool:
        """Before the handler's commit: True if this reply is the callback's to carry (then
        the handler must not send it otherwise; the dispatcher does if the callback goes)."""
        if self._state is not _State.OPEN:
            return False
        self._state, self._text = _State.CLAIMED, text
        return True

    # Dispatcher side.

    def close(self) -> None:
        """Nobody will wait (the run was queued behind a backlog): refuse every claim."""
        if self._state is _State.OPEN:
            self._to(_State.CLOSED)

    def reopen(self) -> None:
        """The claim's transaction rolled back and the event runs again at once, the
        callback still waiting (a batch of events that failed, each run alone): the void
        claim is forgotten, so the run again may claim."""
        if self._state is _State.CLAIMED:
            self._state, self._text = _State.OPEN, None

    def settle(self, *, committed: bool) -> None:
        """Once the event's transaction committed (or did not): hand a claimed reply to the
        callback only after a commit. Without one the claim is void and the event runs
        again later, with no callback waiting, so the handler's other way sends it."""
        if self._state is _State.CLAIMED:
            self._to(_State.COMMITTED if committed else _State.SETTLED)
        elif self._state is _State.OPEN:
            self._to(_State.SETTLED)
        # ABANDONED stays: with a commit the dispatcher sends the reply (`carried()` is
        # False); without one the event runs again later and replies another way.

    async def carried(self, timeout_s: float) -> bool:
        """After `settle(committed=True)` of a claimed reply: True once the callback took it
        into its answer; False if the callback stopped waiting, so the reply must be sent
        another way. A callback that does not take it within `timeout_s` (it is woken at
        once, so only a stuck loop gets here) loses it: the dispatcher sends it."""
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(self._carried)
        except TimeoutError:
            self._give_up()
            return self._carried.done() and self._carried.result()

    # Callback side.

    async def wait(self, budget_s: float, *, deadline: float) -> str | None:
        """The reply text to carry, or None to answer `success`.

        Waits up to `budget_s` for the run to settle; then closes the slot, unless a handler
        already claimed it: then only the commit is left, and the answer waits for it until
        `deadline` (event-loop time; the whole wait never goes past it). Past the deadline,
        or when the request is cancelled, a claimed reply is abandoned to the dispatcher.
        """
        loop = asyncio.get_running_loop()
        try:
            try:
                async with asyncio.timeout_at(min(loop.time() + budget_s, deadline)):
                    await asyncio.shield(self._settled)
            except TimeoutError:
                self.close()
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(self._settled)
        except TimeoutError:
            pass  # the deadline: `_take` gives a claim still uncommitted up
        except asyncio.CancelledError:
            self._give_up()
            raise
        return self._take()

    def _take(self) -> str | None:
        if self._state is _State.COMMITTED:
            self._to(_State.CARRIED)
            return self._text
        self._give_up()
        return None

    def _give_up(self) -> None:
        """The callback stops waiting (or the dispatcher stops waiting for it to take)."""
        if self._state in (_State.CLAIMED, _State.COMMITTED):
            self._to(_State.ABANDONED)
        else:
            self.close()

    def _to(self, state: _State) -> None:
        self._state = state
        if not self._settled.done():
            self._settled.set_result(None)
        if state in (_State.CARRIED, _State.ABANDONED) and not self._carried.done():
            self._carried.set_result(state is _State.CARRIED)


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
