"""Scripts (话术) and their immutable versions.

A script row holds the current content; every change appends a `ScriptVersion`
with the full content, so history, diff and rollback never depend on the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.channels.routing import GroupDelivery as GroupDelivery
from app.db import Base, UTCDateTime

KEY_MAX, TITLE_MAX, CATEGORY_MAX, AUTHOR_MAX, NOTE_MAX = 100, 200, 50, 100, 500


class MsgType(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    IMAGE = "image"
    NEWS = "news"


_MSGTYPE_CHECK = f"msgtype IN ({', '.join(repr(m.value) for m in MsgType)})"
_DELIVERY_CHECK = f"group_delivery IN ({', '.join(repr(d.value) for d in GroupDelivery)})"
_ID = BigInteger().with_variant(Integer, "sqlite")


@dataclass(frozen=True, slots=True)
class ScriptContent:
    """Everything a version records: what an edit changes and a rollback restores."""

    title: str
    category: str
    msgtype: str
    body: str
    attachments: tuple[dict[str, Any], ...] = ()
    schedule_hint: dict[str, Any] | None = None
    description: str = ""
    group_delivery: str = GroupDelivery.AUTO

    def normalized(self) -> ScriptContent:
        # Trailing whitespace is invisible to operators; ignoring it keeps "unchanged" honest.
        return ScriptContent(
            title=self.title.strip(),
            category=self.category.strip(),
            msgtype=self.msgtype.strip(),
            body=self.body.replace("\r\n", "\n").rstrip(),
            attachments=tuple(_copy(a) for a in self.attachments),
            schedule_hint=_copy(self.schedule_hint) if self.schedule_hint else None,
            description=self.description.strip(),
            group_delivery=self.group_delivery.strip(),
        )

    def columns(self) -> dict[str, Any]:
        """The column values shared by `Script` and `ScriptVersion`."""
        return {
            "title": self.title,
            "category": self.category,
            "msgtype": self.msgtype,
            "body": self.body,
            "attachments": [dict(a) for a in self.attachments],
            "schedule_hint": self.schedule_hint,
            "description": self.description,
            "group_delivery": self.group_delivery,
        }


def _copy(value: Any) -> Any:
    # Anything not a mapping is left for validation to name.
    return dict(value) if isinstance(value, Mapping) else value


class _ContentColumns:
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    category: Mapped[str] = mapped_column(String(CATEGORY_MAX))
    msgtype: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(Text)
    # news: [{title, description, url, picurl}]; image: [{path} | {url}]; text/markdown: []
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The schedule the content pack states, e.g. {"type": "cohort_day", "day": 1,
    # "time": "08:00", "target": {"type": "cohort_groups"}}; None: sent on demand.
    schedule_hint: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(Text, default="")
    group_delivery: Mapped[str] = mapped_column(
        String(16), default=GroupDelivery.AUTO, server_default=GroupDelivery.AUTO.value
    )

    @property
    def content(self) -> ScriptContent:
        return ScriptContent(
            title=self.title,
            category=self.category,
            msgtype=self.msgtype,
            body=self.body,
            attachments=tuple(self.attachments or ()),
            schedule_hint=self.schedule_hint,
            description=self.description,
            group_delivery=self.group_delivery,
        )


class Script(_ContentColumns, Base):
    """The current version of one script, found by its stable `key`."""

    __tablename__ = "scripts"
    __table_args__ = (
        CheckConstraint(_MSGTYPE_CHECK, name="msgtype"),
        CheckConstraint(_DELIVERY_CHECK, name="group_delivery"),
        Index("ix_scripts_category", "category"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_MAX), unique=True)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScriptVersion(_ContentColumns, Base):
    """One immutable edit of a script: never updated, never deleted while the script lives."""

    __tablename__ = "script_versions"
    __table_args__ = (
        UniqueConstraint("script_id", "version"),
        CheckConstraint(_MSGTYPE_CHECK, name="msgtype"),
        CheckConstraint(_DELIVERY_CHECK, name="group_delivery"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    script_id: Mapped[int] = mapped_column(_ID, ForeignKey("scripts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(AUTHOR_MAX))
    note: Mapped[str] = mapped_column(String(NOTE_MAX), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
