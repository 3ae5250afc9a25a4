"""Platform tables: the inbox, and the membership the WeCom events describe.

Times are UTC (`UTCDateTime`). Status columns are short strings checked by
constraints, so a bad value fails at write time on both backends.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime


def _in(column: str, enum: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in enum)})"


class InboxStatus(StrEnum):
    RECEIVED = "received"
    HANDLED = "handled"
    FAILED = "failed"


class InboxEvent(Base):
    """One WeCom callback, recorded exactly once under its dedupe key."""

    __tablename__ = "inbox"
    __table_args__ = (
        CheckConstraint(_in("status", InboxStatus), name="status"),
        Index("ix_inbox_status_received_at", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(80))
    body: Mapped[str] = mapped_column(Text)
    event_time: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=InboxStatus.RECEIVED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The instance running the current attempt (app.instances): once it is gone, the
    # row is resumed at once instead of after STUCK_AFTER.
    instance_id: Mapped[str | None] = mapped_column(String(32))


class OutboxStatus(StrEnum):
    PENDING = "pending"  # waiting for not_before (a first try, or a retry)
    CLAIMED = "claimed"  # taken by a sender, not yet attempted
    SENDING = "sending"  # the request is (or was, if the sender died) on its way to WeCom
    SENT = "sent"
    DEAD = "dead"  # a permanent error, or attempts exhausted: shown to operators
    CANCELLED = "cancelled"
    # A 群SOP item (channel `staff`) past its time: its staff member was told, and it waits
    # for them to post it from the chat toolbar (then `sent`), or to skip it.
    AWAITING_STAFF = "awaiting_staff"
    SKIPPED = "skipped"


class OutboxMessage(Base):
    """One intended send, named by its idempotency key (ARCHITECTURE §1 rule 3)."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_in("status", OutboxStatus), name="status"),
        # The sender's due query orders by (not_before, id): cover both, no sort.
        Index("ix_outbox_status_not_before", "status", "not_before", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    # The bucket whose WeCom limit this send counts against (a robot, a member).
    rate_key: Mapped[str | None] = mapped_column(String(240))
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The instance holding the claim (app.instances): once it is gone, the row is
    # reclaimed at once instead of at the end of its lease.
    instance_id: Mapped[str | None] = mapped_column(String(32))
    # Times a send was repeated after WeCom may already have received it (answer lost).
    in_doubt: Mapped[int] = mapped_column(Integer, default=0)
    last_errcode: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    wecom_msgid: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Instance(Base):
    """A running CampBot process (server, sender), alive while its heartbeat is recent."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))  # the hostname, for people
    # Where `pid` names one process: the machine's boot and its pid namespace.
    pid_space: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RateSlot(Base):
    """The earliest time the next send of a rate bucket may go, shared by all instances."""

    __tablename__ = "rate_slots"

    rate_key: Mapped[str] = mapped_column(String(240), primary_key=True)
    next_free_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MassSendStatus(StrEnum):
    AWAITING = "awaiting"  # the task exists; its sender has not confirmed it in WeCom yet
    SENT = "sent"
    FAILED = "failed"  # not a friend / not in the group any more, or over the receive quota


class MassSendResult(Base):
    """What became of each target of a mass send (群发) after its outbox row created the task."""

    __tablename__ = "mass_send_results"
    __table_args__ = (
        CheckConstraint(_in("status", MassSendStatus), name="status"),
        Index("ix_mass_send_results_status_msgid", "status", "msgid"),
    )

    outbox_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("outbox.id", ondelete="CASCADE"),
        primary_key=True,
    )
    msgid: Mapped[str] = mapped_column(String(200))
    sender: Mapped[str] = mapped_column(String(128))
    # One row per target: a merged task to many students has one per student.
    target: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=MassSendStatus.AWAITING)
    wecom_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MassSendQuotaSlot(Base):
    """One spent 群发 slot of a target's quota window (`app.quota`): unique per slot, and
    per task and target, so no two instances spend one slot and no task spends two."""

    __tablename__ = "mass_send_quota"
    __table_args__ = (
        UniqueConstraint("target", "mode", "window_start", "n"),
        UniqueConstraint("outbox_key", "target", name="uq_mass_send_quota_outbox_key_target"),
        # The recent windows, read on each /metrics scrape (app.metrics).
        Index("ix_mass_send_quota_window_start", "window_start", "target"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    target: Mapped[str] = mapped_column(String(200))  # a customer chat id or external userid
    mode: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[date] = mapped_column(Date)  # on the camp's calendar
    n: Mapped[int] = mapped_column(Integer)
    # The task that spent it; None for a slot WeCom said was spent (status 3).
    outbox_key: Mapped[str | None] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(16))
    spent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MemberStatus(StrEnum):
    ACTIVE = "active"
    LOST = "lost"  # the student deleted the staff member (del_follow_user)
    REMOVED = "removed"  # the staff member deleted the student (del_external_contact)


class Member(Base):
    """A person CampBot knows: an external contact (student) or an internal member."""

    __tablename__ = "members"
    __table_args__ = (CheckConstraint(_in("status", MemberStatus), name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    external_userid: Mapped[str | None] = mapped_column(String(128), unique=True)
    userid: Mapped[str | None] = mapped_column(String(128), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=MemberStatus.ACTIVE)
    staff_userid: Mapped[str | None] = mapped_column(String(128))
    channel_state: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GroupChannel(StrEnum):
    ROBOT = "robot"
    APPCHAT = "appchat"
    CUSTOMER = "customer"


class GroupStatus(StrEnum):
    ACTIVE = "active"
    DISMISSED = "dismissed"


class Group(Base):
    """A chat group and the channel that reaches it (ARCHITECTURE §2)."""

    __tablename__ = "groups"
    __table_args__ = (
        CheckConstraint(_in("channel", GroupChannel), name="channel"),
        CheckConstraint(_in("status", GroupStatus), name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    chat_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(16))
    robot_key: Mapped[str | None] = mapped_column(String(128))
    owner_userid: Mapped[str | None] = mapped_column(String(128))
    # The staff member who runs a customer group's 群SOP (else its owner does).
    assistant_userid: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default=GroupStatus.ACTIVE)
    # WeCom's member-list version after the last change we applied; a callback whose
    # LastMemVer differs means one was lost, so the list must be re-read from WeCom.
    member_version: Mapped[str | None] = mapped_column(String(64))
    needs_sync: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    memberships: Mapped[list[GroupMembership]] = relationship(back_populates="group")


class GroupMembership(Base):
    """Who is in which group; a row outlives the stay (left_at) so history is kept."""

    __tablename__ = "group_memberships"
    __table_args__ = (UniqueConstraint("group_id", "member_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    # The id WeCom names the member by (userid or external userid), kept even before
    # CampBot has a Member row for them.
    member_key: Mapped[str] = mapped_column(String(128))
    # Indexed: the stats and the Q&A scopes join a member to their groups by it.
    member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="SET NULL"), index=True
    )
    join_scene: Mapped[int | None] = mapped_column(Integer)
    quit_scene: Mapped[int | None] = mapped_column(Integer)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    group: Mapped[Group] = relationship(back_populates="memberships")


class WeComToken(Base):
    """The access token of one app, shared by every process of the deployment.

    Each gettoken may invalidate the previous token, so instances must share one
    instead of each fetching its own (peers' "token churn" bug).
    """

    __tablename__ = "wecom_tokens"

    app_key: Mapped[str] = mapped_column(String(160), primary_key=True)
    access_token: Mapped[str] = mapped_column(String(512))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WeComMedia(Base):
    """Uploaded media ids by content hash, reused until shortly before WeCom forgets them."""

    __tablename__ = "wecom_media"
    __table_args__ = (UniqueConstraint("scope", "kind", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # "app" for media/upload; "robot:<key>" for webhook uploads, usable by that robot only.
    scope: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    content_hash: Mapped[str] = mapped_column(String(64))
    media_id: Mapped[str] = mapped_column(String(512))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Lease(Base):
    """A named job one instance does at a time (app.leases): held by `holder` while it
    lives and renews before `expires_at`."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(32))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
