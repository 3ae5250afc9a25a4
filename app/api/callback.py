"""`/wecom/callback`: verify, decrypt, parse, record once, answer — then dispatch.

Intake does no business work (ARCHITECTURE §1 rule 1). Every refusal is a
`CallbackError` with its 4xx status, raised before anything is written.

One exception to "answer, then dispatch": a member's text to the app may be answered in
the HTTP answer itself (WeCom's passive reply). For those a handler may answer (the
processor's `may_reply`, e.g. a Q&A keyword occurs in it) the callback, once the event is
recorded, waits up to PASSIVE_BUDGET_S for the dispatcher to run it; a handler that
claimed the reply (`Context.passive_reply`) has it carried, encrypted and signed, once
its transaction committed, if that happens within PASSIVE_TOTAL_S of the request's start.
Otherwise the callback answers `success` and the reply goes as an app message instead:
sent by the handler if it had not claimed yet, by the dispatcher after the commit if it had
(`app.wecom.passive` makes sure exactly one of them does). Contact and group events never
wait. With `CAMPBOT_HANDLERS=worker` nothing waits or runs here: the row is a worker's.

This module knows no web framework: `app.api.callback_asgi` serves it ahead of FastAPI's
routing, whose request machinery cost more than the whole of intake's own work.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from app import inbox, metrics
from app.errors import (
    CallbackDisabledError,
    CallbackError,
    FutureCallbackError,
    MalformedCallbackError,
    PayloadTooLargeError,
    StaleCallbackError,
)
from app.runtime import Runtime
from app.wecom.crypto import CallbackCrypto, passive_reply
from app.wecom.envelope import envelope_encrypt
from app.wecom.events import TextMessage, WeComEvent, parse_event
from app.wecom.passive import PassiveReply, text_reply_xml

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
# How long a member's text to the app waits for its handlers to claim a passive reply:
# short enough that a slow answer still arrives soon as an app message.
PASSIVE_BUDGET_S = 1.0
# The whole wait, a claimed reply's commit included, from the request's start: well inside
# the 5 s after which WeCom drops the answer (and with it a reply carried in it).
PASSIVE_TOTAL_S = 3.0
# How far ahead of our clock a callback's timestamp may be: WeCom's clock is seconds off
# ours at worst. A request dated further ahead would not go stale for that long, so it
# could be replayed after the inbox has forgotten its key.
MAX_CLOCK_SKEW = timedelta(minutes=5)


@runtime_checkable
class PassiveProcessor(Protocol):
    """An inbox processor that can run a row while its callback waits (`bots.dispatch`)."""

    def may_reply(self, event: WeComEvent) -> bool: ...

    def submit_replying(
        self, attempt: inbox.Attempt, event: WeComEvent, passive: PassiveReply
    ) -> asyncio.Future[None] | None: ...


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """What intake reads of a request: its query, its declared length and its body."""

    query: Mapping[str, str]
    content_length: str  # as declared; "" when absent
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True, slots=True)
class Answer:
    """The HTTP answer, and what runs once it is sent (the event's handlers)."""

    body: str
    media_type: str = "text/plain; charset=utf-8"
    status: int = 200
    after: Callable[[], Awaitable[None]] | None = None


SUCCESS = Answer("success")


def _require_crypto(runtime: Runtime) -> CallbackCrypto:
    if runtime.crypto is None:
        raise CallbackDisabledError(
            "callback is not configured: set WECOM_CORP_ID, WECOM_TOKEN, WECOM_ENCODING_AES_KEY"
        )
    return runtime.crypto


def _query(query: Mapping[str, str], *names: str) -> list[str]:
    values = [query.get(name, "") for name in names]
    missing = [name for name, value in zip(names, values, strict=True) if not value]
    if missing:
        raise MalformedCallbackError("missing query parameter: " + ", ".join(missing))
    return values


def _check_fresh(timestamp: str, now: datetime) -> None:
    try:
        signed_at = datetime.fromtimestamp(int(timestamp), UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise MalformedCallbackError("timestamp is not a Unix time") from exc
    if now - signed_at > inbox.KEY_RETENTION:
        raise StaleCallbackError("callback is older than the inbox keeps keys (a replay?)")
    if signed_at - now > MAX_CLOCK_SKEW:
        raise FutureCallbackError(
            f"callback timestamp is more than {MAX_CLOCK_SKEW.total_seconds() / 60:.0f} minutes "
            "ahead of our clock"
        )


async def _read_body(request: CallbackRequest) -> bytes:
    declared = request.content_length
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"body over {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.chunks:
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLargeError(f"body over {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        raise MalformedCallbackError("empty body")
    return body


def _parse(plaintext: str) -> WeComEvent:
    try:
        return parse_event(plaintext)
    except MalformedCallbackError:
        raise
    except Exception as exc:
        # Parsing is pure; whatever else it raises on a hostile body is still a bad body.
        logger.exception("callback body could not be parsed")
        raise MalformedCallbackError(f"cannot parse the message: {type(exc).__name__}") from exc


def _may_reply(event: WeComEvent) -> bool:
    """A member's text in the app's 1:1 chat: the only callbacks worth waiting for."""
    return isinstance(event, TextMessage) and event.agent_id is not None and bool(event.from_user)


def _reply_body(crypto: CallbackCrypto, event: WeComEvent, text: str, now: datetime) -> str:
    plaintext = text_reply_xml(
        to_user=event.from_user, from_user=event.to_user, content=text, at=now
    )
    encrypted = crypto.encrypt(
        plaintext, timestamp=str(int(now.timestamp())), nonce=secrets.token_hex(8)
    )
    return passive_reply(encrypted)


def verify_url(runtime: Runtime, query: Mapping[str, str]) -> Answer:
    """URL verification: answer the decrypted echostr, nothing else (WeCom wants it in 1 s)."""
    crypto = _require_crypto(runtime)
    signature, timestamp, nonce, echostr = _query(
        query, "msg_signature", "timestamp", "nonce", "echostr"
    )
    return Answer(
        crypto.verify_and_decrypt(
            msg_signature=signature, timestamp=timestamp, nonce=nonce, encrypt=echostr
        )
    )


async def receive(runtime: Runtime, request: CallbackRequest) -> Answer:
    deadline = asyncio.get_running_loop().time() + PASSIVE_TOTAL_S
    crypto = _require_crypto(runtime)
    signature, timestamp, nonce = _query(request.query, "msg_signature", "timestamp", "nonce")
    now = runtime.clock.now()
    _check_fresh(timestamp, now)
    body = await _read_body(request)
    # Only `Encrypt` is read from the unsigned body; the rest comes from signed plaintext.
    plaintext = crypto.verify_and_decrypt(
        msg_signature=signature, timestamp=timestamp, nonce=nonce, encrypt=envelope_encrypt(body)
    )
    event = _parse(plaintext)
    # Returns once the row is committed (shared with concurrent callbacks: group commit).
    # An event no handler registers for is recorded handled: there is nothing to run.
    processor = runtime.processor
    idle = event.kind not in processor.handled_kinds
    attempt = await runtime.intake.claim(event=event, body=plaintext, now=now, handled=idle)
    if attempt is None:
        metrics.DUPLICATE.inc()
        logger.debug(  # counted in campbot_callbacks_total; INFO would be a line per retry
            "callback duplicate ignored",
            extra={"dedupe_key": event.dedupe_key, "kind": event.kind},
        )
        return SUCCESS
    metrics.ACCEPTED.inc()
    logger.debug(  # counted; its handlers' run logs the event at INFO
        "callback accepted",
        extra={"dedupe_key": attempt.dedupe_key, "kind": event.kind, "inbox_id": attempt.id},
    )
    if idle:
        metrics.EVENTS.labels("no_handler").inc()
        return SUCCESS
    if not runtime.settings.handlers_here:
        return SUCCESS  # a `campbot worker` takes the row (app.inbox_taker)
    if (
        _may_reply(event)
        and isinstance(processor, PassiveProcessor)
        and processor.may_reply(event)
    ):
        return await _passively(runtime, crypto, processor, attempt, event, deadline=deadline)
    # Runs after the answer is sent; the dispatcher bounds how many run at once, so a
    # burst cannot starve intake.
    return Answer("success", after=lambda: processor.process_claimed(attempt, event))


async def _passively(
    runtime: Runtime,
    crypto: CallbackCrypto,
    processor: PassiveProcessor,
    attempt: inbox.Attempt,
    event: WeComEvent,
    *,
    deadline: float,
) -> Answer:
    """Run the event while the callback waits; its reply in the answer if one came in time."""
    passive = PassiveReply()
    done = processor.submit_replying(attempt, event, passive)
    after = None if done is None else (lambda: done)  # the request ends when the run has
    text = await passive.wait(PASSIVE_BUDGET_S, deadline=deadline)
    if text is None:
        return Answer("success", after=after)
    logger.info("callback answered with a passive reply", extra={"inbox_id": attempt.id})
    answer = _reply_body(crypto, event, text, runtime.clock.now())
    return Answer(answer, media_type="application/xml", after=after)


def _reason(exc: CallbackError) -> str:
    """The refusal's kind for metrics: its class, e.g. SignatureError → signature."""
    name = type(exc).__name__.removesuffix("Error").removesuffix("Callback")
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def refusal(exc: CallbackError) -> Answer:
    """A refusal as its status with a one-line reason, counted and logged."""
    metrics.CALLBACKS.labels("refused", str(exc.status_code), _reason(exc)).inc()
    logger.warning("callback refused: %s", exc.reason, extra={"status": exc.status_code})
    return Answer(exc.reason, status=exc.status_code)
