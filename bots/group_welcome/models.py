"""Group-welcome tables: newcomers waiting for their robot greeting, and the WeCom group
welcome templates CampBot keeps in step with each cohort's script.

Pending newcomers live in SQL, not memory, so a batch survives a restart and every
instance sees the same batches. Times are UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class GroupJoinPending(Base):
    """A newcomer of a robot group; `batch_key` names the outbox message that greeted them
    (None while they wait for their batch's window to close)."""

    __tablename__ = "group_join_pending"
    __table_args__ = (
        # A re-run of the same join event (the sweeper) adds nothing.
        UniqueConstraint("group_id", "member_key", "joined_at"),
        Index("ix_group_join_pending_open", "batch_key", "group_id", "joined_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    member_key: Mapped[str] = mapped_column(String(128))
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the event's CreateTime
    batch_key: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GroupWelcomeTemplate(Base):
    """The WeCom group welcome template (入群欢迎语素材) made from a cohort's script."""

    __tablename__ = "group_welcome_templates"

    cohort_id: Mapped[int] = mapped_column(
        ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True
    )
    template_id: Mapped[str] = mapped_column(String(128))
    script_key: Mapped[str] = mapped_column(String(200))
    # What WeCom holds: a changed script (or cohort name) changes it, and CampBot edits.
    content_sha256: Mapped[str] = mapped_column(String(64))
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime)
