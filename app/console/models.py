"""The console's tables: accounts with a role, the cohorts an assistant works in, and the
server-side sessions a signed cookie names (so sign-out and a password change end them).

Times are UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class Role(StrEnum):
    ADMIN = "admin"  # 管理员: accounts and tokens, and everything an operator does
    OPERATOR = "operator"  # 运营: everything about camps
    ASSISTANT = "assistant"  # 助教: their own cohorts' review queue, students and numbers


ROLE_NAMES: dict[str, str] = {
    Role.ADMIN: "管理员",
    Role.OPERATOR: "运营",
    Role.ASSISTANT: "助教",
}


class ConsoleAccount(Base):
    """Someone who signs in to the console; only an argon2 hash of the password is kept."""

    __tablename__ = "console_accounts"
    __table_args__ = (
        CheckConstraint(f"role IN ({', '.join(repr(r.value) for r in Role)})", name="role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    # The WeCom member an assistant is, so the staff sidebar and the console agree on who.
    wecom_userid: Mapped[str | None] = mapped_column(String(128), unique=True)
    # Wrong passwords in a row, and until when the account refuses to sign in after too many.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AccountCohort(Base):
    """A cohort an assistant works in (their review queue, students and numbers)."""

    __tablename__ = "console_account_cohorts"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("console_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    cohort_id: Mapped[int] = mapped_column(
        ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ConsoleSession(Base):
    """One signed-in browser. The cookie carries a random secret; only its SHA-256 is the
    key here, so the table does not hold usable cookies."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("console_accounts.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
