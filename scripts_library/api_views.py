"""Rows and rendered messages as the admin API's response models."""

from __future__ import annotations

from app.channels.messages import OutMessage
from scripts_library.api_schemas import (
    ArticleOut,
    ChannelCheckOut,
    PreviewOut,
    ScriptOut,
    VersionOut,
    VersionSummaryOut,
)
from scripts_library.api_support import channel_checks
from scripts_library.models import Script, ScriptVersion


def script_out(script: Script) -> ScriptOut:
    return ScriptOut(
        id=script.id,
        key=script.key,
        version=script.version,
        title=script.title,
        msgtype=script.msgtype,
        body=script.body,
        category=script.category,
        attachments=list(script.attachments or []),
        schedule_hint=script.schedule_hint,
        description=script.description,
        group_delivery=script.group_delivery,
        created_at=script.created_at,
        updated_at=script.updated_at,
    )


def version_summary(row: ScriptVersion) -> VersionSummaryOut:
    return VersionSummaryOut(
        version=row.version, author=row.author, note=row.note, created_at=row.created_at
    )


def version_out(row: ScriptVersion) -> VersionOut:
    return VersionOut(
        **version_summary(row).model_dump(),
        title=row.title,
        msgtype=row.msgtype,
        body=row.body,
        category=row.category,
        attachments=list(row.attachments or []),
        schedule_hint=row.schedule_hint,
        description=row.description,
        group_delivery=row.group_delivery,
    )


def preview_out(*, key: str, version: int, message: OutMessage) -> PreviewOut:
    return PreviewOut(
        key=key,
        version=version,
        msgtype=message.msgtype,
        content=message.content,
        articles=[
            ArticleOut(title=a.title, url=a.url, description=a.description, picurl=a.picurl)
            for a in message.articles
        ],
        image_bytes=len(message.image),
        content_bytes=len(message.content.encode()),
        channels=[
            ChannelCheckOut(
                channel=c.channel, covers=list(c.covers), name=c.name, fits=c.fits, reason=c.reason
            )
            for c in channel_checks(message)
        ],
    )
