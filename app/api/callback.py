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
wait.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import PlainTextResponse, Response

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
router = APIRouter(tags=["wecom"])

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


def _require_crypto(runtime: Runtime) -> CallbackCrypto:
    if runtime.crypto is None:
        raise CallbackDisabledError(
            "callback is not configured: set WECOM_CORP_ID, WECOM_TOKEN, WECOM_ENCODING_AES_KEY"
        )
    return runtime.crypto


def _query(request: Request, *names: str) -> list[str]:
    values = [request.query_params.get(name, "") for name in names]
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


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"body over {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
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


async def _follow(done: asyncio.Future[None]) -> None:
    await done


def _runtime(request: Request) -> Runtime:
    # Not `RuntimeDep`: FastAPI runs a sync dependency in its thread pool, a thread hop
    # per callback that costs more than the rest of intake's own work.
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.get("/wecom/callback", response_class=PlainTextResponse)
async def verify_url(request: Request) -> PlainTextResponse:
    """URL verification: answer the decrypted echostr, nothing else (WeCom wants it in 1 s)."""
    crypto = _require_crypto(_runtime(request))
    signature, timestamp, nonce, echostr = _query(
        request, "msg_signature", "timestamp", "nonce", "echostr"
    )
    echo = crypto.verify_and_decrypt(
        msg_signature=signature, timestamp=timestamp, nonce=nonce, encrypt=echostr
    )
    return PlainTextResponse(echo)


@router.post("/wecom/callback", response_class=PlainTextResponse)
async def receive(request: Request, background: BackgroundTasks) -> Response:
    deadline = asyncio.get_running_loop().time() + PASSIVE_TOTAL_S
    runtime = _runtime(request)
    crypto = _require_crypto(runtime)
    signature, timestamp, nonce = _query(request, "msg_signature", "timestamp", "nonce")
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
    else:
        metrics.ACCEPTED.inc()
        logger.debug(  # counted; its handlers' run logs the event at INFO
            "callback accepted",
            extra={"dedupe_key": attempt.dedupe_key, "kind": event.kind, "inbox_id": attempt.id},
        )
        if idle:
            metrics.EVENTS.labels("no_handler").inc()
        elif (
            _may_reply(event)
            and isinstance(processor, PassiveProcessor)
            and processor.may_reply(event)
        ):
            passive = PassiveReply()
            done = processor.submit_replying(attempt, event, passive)
            if done is not None:
                # As below: the request's background task ends when the run has.
                background.add_task(_follow, done)
            text = await passive.wait(PASSIVE_BUDGET_S, deadline=deadline)
            if text is not None:
                logger.info(
                    "callback answered with a passive reply", extra={"inbox_id": attempt.id}
                )
                answer = _reply_body(crypto, event, text, runtime.clock.now())
                return Response(answer, media_type="application/xml")
        else:
            # A background task runs after the answer is sent; the dispatcher bounds how
            # many run at once, so a burst cannot starve intake.
            background.add_task(processor.process_claimed, attempt, event)
    return PlainTextResponse("success")


def _reason(exc: CallbackError) -> str:
    """The refusal's kind for metrics: its class, e.g. SignatureError → signature."""
    name = type(exc).__name__.removesuffix("Error").removesuffix("Callback")
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def callback_error_response(_request: Request, exc: Exception) -> PlainTextResponse:
    """Turn a refusal into its status with a one-line reason (registered in main)."""
    assert isinstance(exc, CallbackError)
    metrics.CALLBACKS.labels("refused", str(exc.status_code), _reason(exc)).inc()
    logger.warning("callback refused: %s", exc.reason, extra={"status": exc.status_code})
    return PlainTextResponse(exc.reason, status_code=exc.status_code)
