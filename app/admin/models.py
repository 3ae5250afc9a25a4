"""Admin tables: cohorts and their links to groups and members, operator tokens, the audit log,
member tags, the personal H5 link versions and server-held secrets.

Groups and members live in `app.models`; a cohort reaches them through association tables
(`cohort_groups`, `cohort_members`) so the platform tables need no cohort column. Times are
UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class Cohort(Base):
    """One run (期) of a camp; day 0 (开营) is `start_date` in the cohort's time zone."""

    __tablename__ = "cohorts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    camp: Mapped[str] = mapped_column(String(200))
    start_date: Mapped[date] = mapped_column(Date)
    days: Mapped[int] = mapped_column(Integer)
    # The 渠道活码 `State` that enrolls a new external contact into this cohort.
    channel_state: Mapped[str] = mapped_column(String(64), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CohortGroup(Base):
    """A group belongs to at most one cohort."""

    __tablename__ = "cohort_groups"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    cohort_id: Mapped[int] = mapped_column(
        ForeignKey("cohorts.id", ondelete="RESTRICT"), index=True
    )
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CohortMember(Base):
    """A member's enrollment in a cohort; `joined_at` is the member's own day 0 moment."""

    __tablename__ = "cohort_members"
    __table_args__ = (UniqueConstraint("member_id", "cohort_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    cohort_id: Mapped[int] = mapped_column(
        ForeignKey("cohorts.id", ondelete="RESTRICT"), index=True
    )
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MemberTag(Base):
    __tablename__ = "member_tags"

    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MemberH5(Base):
    """The version a member's personal H5 link must carry; bumping it revokes older links.

    No row means version 0 (the member's link was never revoked).
    """

    __tablename__ = "member_h5"

    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    token_version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ServerSecret(Base):
    """Random keys the server makes for itself on first use (hex), shared by every instance."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OperatorToken(Base):
    """A named bearer token for the admin API; only its SHA-256 is stored."""

    __tablename__ = "operator_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, so operators can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Who changed what through the admin API, with the object before and after."""

    __tablename__ = "admin_audit"
    __table_args__ = (Index("ix_admin_audit_resource_resource_id", "resource", "resource_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    before: Mapped[dict[str, object] | None] = mapped_column(JSON)
    after: Mapped[dict[str, object] | None] = mapped_column(JSON)
