"""What a group's greeting says: the cohort's `group_welcome` script (its own
`group_welcome.{channel_state}` first) rendered with the newcomers' names, in as few robot
messages as the byte limit and MAX_NAMES_PER_MESSAGE allow."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort, CohortGroup
from app.channels.messages import ROBOT, OutMessage, check
from app.models import Group
from app.wecom.errors import UndeliverableError
from scripts_library.errors import RenderError, ScriptNotFoundError
from scripts_library.models import MsgType, Script
from scripts_library.render import render
from scripts_library.service import get_script
from scripts_library.variables import RenderContext

SCRIPT_KEY = "group_welcome"  # a cohort may override it with `group_welcome.{channel_state}`
MAX_NAMES_PER_MESSAGE = 80  # a longer list reads as a wall, whatever the byte limit allows


class BatchNotSendable(Exception):
    """The group welcome cannot be rendered for this group (the text says why, in Chinese)."""


async def script_and_context(session: AsyncSession, group: Group) -> tuple[Script, RenderContext]:
    cohort = await session.scalar(
        select(Cohort)
        .join(CohortGroup, CohortGroup.cohort_id == Cohort.id)
        .where(CohortGroup.group_id == group.id)
    )
    script = await cohort_script(session, cohort)
    if script is None:
        raise BatchNotSendable(f"话术库里没有入群欢迎话术「{SCRIPT_KEY}」，新成员欢迎未发送。")
    if script.msgtype not in (MsgType.TEXT, MsgType.MARKDOWN):
        raise BatchNotSendable(
            f"入群欢迎话术「{script.key}」是 {script.msgtype} 消息；"
            "点名欢迎只支持文本（text）或 markdown。"
        )
    return script, cohort_context(cohort, group_name=group.name)


async def cohort_script(session: AsyncSession, cohort: Cohort | None) -> Script | None:
    """The cohort's own `group_welcome.{channel_state}`, else the pack's `group_welcome`."""
    keys = [f"{SCRIPT_KEY}.{cohort.channel_state}"] if cohort is not None else []
    for key in [*keys, SCRIPT_KEY]:
        try:
            return await get_script(session=session, key=key)
        except ScriptNotFoundError:
            continue
    return None


def cohort_context(cohort: Cohort | None, *, group_name: str | None) -> RenderContext:
    if cohort is None:
        return RenderContext(group_name=group_name or "本群")
    return RenderContext(
        cohort_name=cohort.name,
        camp_name=cohort.camp,
        total_days=cohort.days,
        group_name=group_name or f"{cohort.camp}{cohort.name}",
    )


def split_greetings(script: Script, context: RenderContext, names: list[str]) -> list[OutMessage]:
    """As few messages as name all of `names` within the robot's byte limit (text 2048,
    markdown 4096) and MAX_NAMES_PER_MESSAGE each, names kept in order."""
    limit = ROBOT.markdown if script.msgtype == MsgType.MARKDOWN else ROBOT.text
    assert limit is not None  # the robot has markdown
    parts: list[OutMessage] = []
    current: list[str] = []
    current_message: OutMessage | None = None
    for name in names:
        trial = _render(script, context, [*current, name])
        fits = len(trial.content.encode()) <= limit and len(current) < MAX_NAMES_PER_MESSAGE
        if fits or not current:
            current, current_message = [*current, name], trial
            continue
        assert current_message is not None
        parts.append(current_message)
        current, current_message = [name], _render(script, context, [name])
    if current_message is not None:
        parts.append(current_message)
    for message in parts:
        try:
            check(message, ROBOT)
        except UndeliverableError as exc:  # one name alone over the limit: a broken script
            raise BatchNotSendable(f"入群欢迎话术「{script.key}」无法发送：{exc}") from exc
    return parts


def _render(script: Script, context: RenderContext, names: list[str]) -> OutMessage:
    try:
        return render(script, replace(context, newcomer_names=tuple(names)))
    except RenderError as exc:
        raise BatchNotSendable(f"入群欢迎话术「{script.key}」渲染失败：{exc}") from exc
