"""Script library operations. Keyword-only, `*, session` first; they flush, never commit.

Every stored change appends a `ScriptVersion`; nothing here rewrites or deletes one. The admin
API passes its `actor` to the edits (create, update, rollback): each stored change is written
to the audit log too, with the before/after snapshots (the content pack's import and tests
pass none and write no entry).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.audit import AuditTrail
from app.admin.common import Actor, snapshot
from app.channels.messages import OutMessage
from scripts_library.errors import (
    Problem,
    RenderError,
    ScriptExistsError,
    ScriptNotFoundError,
    ScriptValidationError,
)
from scripts_library.models import AUTHOR_MAX, NOTE_MAX, Script, ScriptContent, ScriptVersion
from scripts_library.render import content_of, render
from scripts_library.trial import TrialPool
from scripts_library.validate import validate
from scripts_library.variables import RenderContext, sample_context
from scripts_library.yamlio import dump_content

ImageLoad = Callable[[str], bytes]
AUDIT = AuditTrail("scripts")


class SaveOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


async def create_script(
    *,
    session: AsyncSession,
    key: str,
    title: str,
    msgtype: str,
    body: str,
    category: str,
    author: str,
    attachments: Sequence[Mapping[str, Any]] = (),
    schedule_hint: Mapping[str, Any] | None = None,
    description: str = "",
    group_delivery: str = "auto",
    note: str = "",
    now: datetime | None = None,
    images: ImageLoad | None = None,
    trials: TrialPool | None = None,
    actor: Actor | None = None,
) -> Script:
    """A new script at version 1 (ScriptExistsError if the key is taken)."""
    content = ScriptContent(
        title=title,
        category=category,
        msgtype=msgtype,
        body=body,
        attachments=tuple(dict(a) for a in attachments),
        schedule_hint=dict(schedule_hint) if schedule_hint else None,
        description=description,
        group_delivery=group_delivery,
    )
    if await _find(session, key) is not None:
        raise ScriptExistsError(key)
    script, _ = await save_content(
        session=session,
        key=key,
        content=content,
        author=author,
        note=note,
        now=now,
        images=images,
        trials=trials,
    )
    if actor is not None:
        after, at = snapshot(script), script.created_at
        await AUDIT.record("create", key, session=session, actor=actor, now=at, after=after)
    return script


async def update_script(
    *,
    session: AsyncSession,
    key: str,
    author: str,
    note: str = "",
    title: str | None = None,
    msgtype: str | None = None,
    body: str | None = None,
    category: str | None = None,
    attachments: Sequence[Mapping[str, Any]] | None = None,
    schedule_hint: Mapping[str, Any] | None = None,
    description: str | None = None,
    group_delivery: str | None = None,
    now: datetime | None = None,
    images: ImageLoad | None = None,
    trials: TrialPool | None = None,
    actor: Actor | None = None,
) -> Script:
    """A new version with the given fields changed (None keeps a field; `schedule_hint={}`
    clears it). Content equal to the current version stores nothing."""
    script = await _get(session, key, lock=True)
    before = snapshot(script)
    changes: dict[str, Any] = {
        "title": title,
        "msgtype": msgtype,
        "body": body,
        "category": category,
        "description": description,
        "group_delivery": group_delivery,
        "attachments": None if attachments is None else tuple(dict(a) for a in attachments),
        "schedule_hint": None if schedule_hint is None else dict(schedule_hint),
    }
    content = replace(script.content, **{k: v for k, v in changes.items() if v is not None})
    changed = await _store(
        session, script, content, author=author, note=note, now=now, images=images, trials=trials
    )
    if changed and actor is not None:
        after, at = snapshot(script), script.updated_at  # `at`: when the version was stored
        await AUDIT.record(
            "update", key, session=session, actor=actor, now=at, before=before, after=after
        )
    return script


async def save_content(
    *,
    session: AsyncSession,
    key: str,
    content: ScriptContent,
    author: str,
    note: str = "",
    now: datetime | None = None,
    images: ImageLoad | None = None,
    trials: TrialPool | None = None,
    checked: bool = False,
) -> tuple[Script, SaveOutcome]:
    """Create or update `key` to exactly `content` (the content pack's upsert).

    With `trials` (the admin API) the templates are tried in a worker process; without (the
    CLI, the built-in pack, tests) here, within the sandbox's bounds. `checked`: a trial
    worker has just found no problem with `content` (key included), so it is not tried again
    (an uploaded pack's hundreds of renders would otherwise run on the event loop)."""
    script = await _find(session, key, lock=True)
    if script is not None:
        changed = await _store(
            session,
            script,
            content,
            author=author,
            note=note,
            now=now,
            images=images,
            trials=trials,
            checked=checked,
        )
        return script, SaveOutcome.UPDATED if changed else SaveOutcome.UNCHANGED
    content = content.normalized()
    _check_edit(author, note)
    if not checked:
        await _validate(content, key=key, images=images, trials=trials)
    now = now or datetime.now(UTC)
    script = Script(key=key, version=1, created_at=now, updated_at=now, **content.columns())
    session.add(script)
    await session.flush()
    session.add(_version_row(script, author=author, note=note, now=now))
    await session.flush()
    return script, SaveOutcome.CREATED


async def _store(
    session: AsyncSession,
    script: Script,
    content: ScriptContent,
    *,
    author: str,
    note: str,
    now: datetime | None,
    images: ImageLoad | None,
    trials: TrialPool | None,
    checked: bool = False,
) -> bool:
    content = content.normalized()
    if content == script.content:
        return False
    _check_edit(author, note)
    if not checked:
        await _validate(content, key=None, images=images, trials=trials)
    for name, value in content.columns().items():
        setattr(script, name, value)
    script.version += 1
    script.updated_at = now or datetime.now(UTC)
    session.add(_version_row(script, author=author, note=note, now=script.updated_at))
    await session.flush()
    return True


async def _validate(
    content: ScriptContent, *, key: str | None, images: ImageLoad | None, trials: TrialPool | None
) -> None:
    if trials is None:
        validate(content, key=key, images=images)
        return
    problems = await trials.problems(content, key=key, images=images)
    if problems:
        raise ScriptValidationError(problems)


def _version_row(script: Script, *, author: str, note: str, now: datetime) -> ScriptVersion:
    return ScriptVersion(
        script_id=script.id,
        version=script.version,
        author=author.strip(),
        note=note.strip(),
        created_at=now,
        **script.content.columns(),
    )


def _check_edit(author: str, note: str) -> None:
    problems = []
    if not author.strip() or len(author) > AUTHOR_MAX:
        problems.append(Problem("author", f"请填写修改人（不超过 {AUTHOR_MAX} 个字符）。"))
    if len(note) > NOTE_MAX:
        problems.append(Problem("note", f"修改说明不能超过 {NOTE_MAX} 个字符。"))
    if problems:
        raise ScriptValidationError(problems)


async def _find(session: AsyncSession, key: str, *, lock: bool = False) -> Script | None:
    query = select(Script).where(Script.key == key)
    if lock:  # two editors at once: the second waits, then numbers its version after the first
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def _get(session: AsyncSession, key: str, *, lock: bool = False) -> Script:
    script = await _find(session, key, lock=lock)
    if script is None:
        raise ScriptNotFoundError(key)
    return script


async def get_script(*, session: AsyncSession, key: str) -> Script:
    return await _get(session, key)


async def list_scripts(*, session: AsyncSession, category: str | None = None) -> list[Script]:
    """Scripts by category, then in the order they were created (a pack's own order)."""
    query = select(Script).order_by(Script.category, Script.id)
    if category is not None:
        query = query.where(Script.category == category)
    return list((await session.execute(query)).scalars())


async def versions(*, session: AsyncSession, key: str) -> list[ScriptVersion]:
    """The script's history, newest first."""
    script = await _get(session, key)
    query = (
        select(ScriptVersion)
        .where(ScriptVersion.script_id == script.id)
        .order_by(ScriptVersion.version.desc())
    )
    return list((await session.execute(query)).scalars())


async def get_version(*, session: AsyncSession, key: str, version: int) -> ScriptVersion:
    script = await _get(session, key)
    query = select(ScriptVersion).where(
        ScriptVersion.script_id == script.id, ScriptVersion.version == version
    )
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None:
        raise ScriptNotFoundError(key, version)
    return found


async def diff(*, session: AsyncSession, key: str, a: int, b: int) -> str:
    """A unified diff from version `a` to version `b` over every field ("" when equal)."""
    old = await get_version(session=session, key=key, version=a)
    new = await get_version(session=session, key=key, version=b)
    lines = difflib.unified_diff(
        dump_content(old.content).splitlines(),
        dump_content(new.content).splitlines(),
        fromfile=f"{key} 第 {a} 版",
        tofile=f"{key} 第 {b} 版",
        lineterm="",
    )
    return "\n".join(lines)


async def rollback(
    *,
    session: AsyncSession,
    key: str,
    version: int,
    author: str,
    note: str | None = None,
    now: datetime | None = None,
    images: ImageLoad | None = None,
    trials: TrialPool | None = None,
    actor: Actor | None = None,
) -> Script:
    """A new version whose content is that of `version`; history stays as it was.

    Rolling back to content equal to the current version stores nothing."""
    old = await get_version(session=session, key=key, version=version)
    script = await _get(session, key, lock=True)
    before = snapshot(script)
    note = f"回滚到第 {version} 版" if note is None else note
    changed = await _store(
        session,
        script,
        old.content,
        author=author,
        note=note,
        now=now,
        images=images,
        trials=trials,
    )
    if changed and actor is not None:
        after, at = snapshot(script), script.updated_at
        await AUDIT.record(
            "rollback", key, session=session, actor=actor, now=at, before=before, after=after
        )
    return script


async def preview(
    *,
    session: AsyncSession,
    key: str,
    context: RenderContext | Mapping[str, object] | None = None,
    version: int | None = None,
    images: ImageLoad | None = None,
    trials: TrialPool | None = None,
) -> OutMessage:
    """The message `key` (or one of its versions) renders to; a mapping or None fills the
    rest from the sample values. With `trials` it is rendered in a worker process."""
    if version is None:
        target: Script | ScriptVersion = await _get(session, key)
    else:
        target = await get_version(session=session, key=key, version=version)
    if not isinstance(context, RenderContext):
        context = sample_context(context)
    if trials is None:
        return render(target, context, images=images)
    return await trials.render(content_of(target), context, images=images)


async def preview_draft(
    *,
    content: ScriptContent,
    context: RenderContext,
    images: ImageLoad | None = None,
    trials: TrialPool,
) -> tuple[list[Problem], OutMessage | None, str | None]:
    """What an unsaved edit would be refused for (what saving it would say), what it renders
    to for `context`, and why it does not render (None when it does): the editor's preview."""
    content = content.normalized()
    problems = await trials.problems(content, key=None, images=images)
    try:
        return problems, await trials.render(content, context, images=images), None
    except RenderError as exc:
        return problems, None, str(exc)
