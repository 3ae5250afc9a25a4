"""What `scripts_library.api` needs besides the service: the trial-render workers, error
translation, images loaded off the event loop, the preview's context and its per-channel
size check."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.errors import Conflict, FieldProblem, InvalidInput, NotFound
from app.channels.messages import APP, MASS_SEND, ROBOT, Limits, OutMessage, check
from app.models import Member
from app.wecom.errors import UndeliverableError
from scripts_library.errors import (
    Problem,
    RenderError,
    ScriptExistsError,
    ScriptNotFoundError,
    ScriptValidationError,
)
from scripts_library.images import ImageError, ImageLoader, Preloaded
from scripts_library.models import MsgType, Script
from scripts_library.trial import TrialPool
from scripts_library.variables import RenderContext, sample_context


def get_trials(request: Request) -> TrialPool:
    """The app's trial-render workers (main.py starts them in the lifespan)."""
    trials: TrialPool = request.app.state.script_trials
    return trials


TrialsDep = Annotated[TrialPool, Depends(get_trials)]


def invalid(problems: Sequence[Problem]) -> InvalidInput:
    """One 422 naming every problem (InvalidInput's constructor takes just the first)."""
    first = problems[0] if problems else Problem("body", "内容不合法。")
    error = InvalidInput(first.field, first.message)
    error.problems = [FieldProblem(p.field, p.message) for p in problems] or error.problems
    return error


@contextmanager
def script_errors() -> Iterator[None]:
    """The library's errors as the admin API's 422 / 404 / 409."""
    try:
        yield
    except ScriptValidationError as exc:
        raise invalid(exc.problems) from None
    except ScriptNotFoundError as exc:
        raise NotFound(str(exc)) from None
    except ScriptExistsError as exc:
        raise Conflict(str(exc)) from None


async def locked_script(session: AsyncSession, key: str) -> Script:
    """The script, locked before its "before" snapshot is taken, so the snapshot and the
    edit see the same row even when two operators save at once."""
    query = select(Script).where(Script.key == key).with_for_update()
    script = (await session.execute(query)).scalar_one_or_none()
    if script is None:
        raise ScriptNotFoundError(key)
    return script


async def preload_images(msgtype: str, attachments: Sequence[Any]) -> Preloaded:
    """The picture of an image script, read in a thread (or the error reading it)."""
    if msgtype != MsgType.IMAGE or len(attachments) != 1:
        return Preloaded()
    attachment = attachments[0]
    if not isinstance(attachment, Mapping):
        return Preloaded()  # validation names the malformed attachment
    ref = attachment.get("path") or attachment.get("url")
    if not isinstance(ref, str) or not ref.strip():
        return Preloaded()  # validation names the missing reference
    ref = ref.strip()
    try:
        return Preloaded(ref, await asyncio.to_thread(ImageLoader(), ref))
    except ImageError as exc:
        return Preloaded(ref, error=exc)


async def preview_context(
    session: AsyncSession, overrides: Mapping[str, Any] | None, member_id: int | None
) -> RenderContext:
    """The sample values, with the chosen member's name and the operator's overrides."""
    values: dict[str, Any] = {}
    if member_id is not None:
        member = await session.get(Member, member_id)
        if member is None:
            raise InvalidInput("member_id", f"学员 {member_id} 不存在。")
        values["student_name"] = member.name or "同学"  # what the scheduler says too
    values.update(overrides or {})
    try:
        return sample_context(values)
    except ScriptValidationError as exc:
        raise invalid(exc.problems) from None
    except (KeyError, TypeError, ValueError) as exc:
        # e.g. a leaderboard entry without name/points
        raise InvalidInput("context", f"变量的值格式不对：{exc!r}") from None


def preview_failed(exc: RenderError) -> InvalidInput:
    if isinstance(exc, ImageError):
        return InvalidInput("attachments[0]", str(exc))
    return InvalidInput("context", f"用这些变量渲染失败：{exc}")


@dataclass(frozen=True, slots=True)
class ChannelCheck:
    channel: str
    covers: tuple[str, ...]
    name: str
    fits: bool
    reason: str | None


# The channels a rendered script may go out on, by the limits they share.
CHANNELS: tuple[tuple[str, tuple[str, ...], Limits], ...] = (
    ("robot", ("robot",), ROBOT),
    ("appchat", ("appchat", "app_message"), APP),
    ("customer", ("customer_group", "customer_single"), MASS_SEND),
)


def channel_checks(message: OutMessage) -> list[ChannelCheck]:
    """Whether each channel would take `message` (app.channels.messages.check decides)."""
    results = []
    for channel, covers, limits in CHANNELS:
        try:
            check(message, limits)
        except UndeliverableError as exc:
            results.append(ChannelCheck(channel, covers, limits.name, False, exc.message))
        else:
            results.append(ChannelCheck(channel, covers, limits.name, True, None))
    return results
