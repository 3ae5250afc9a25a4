"""Console accounts: create, edit (role, cohorts, WeCom userid, disable), set a password.

Keyword-only, flush-only, like every service; each change is audited as `accounts` with the
acting account's (or the CLI's) name. Setting a password or disabling an account ends its
sessions; at least one usable 管理员 always remains.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.audit import AuditTrail
from app.admin.common import Actor, flush_or_conflict, get_or_404, snapshot
from app.admin.errors import Conflict, InvalidInput
from app.admin.models import Cohort
from app.api.admin.fields import CohortRef, Ident, OperatorName
from app.api.admin.schemas import Input
from app.console.models import AccountCohort, ConsoleAccount, ConsoleSession, Role
from app.console.passwords import check_password_rules, hash_password

AUDIT = AuditTrail("accounts")
WHAT = "账号"
EDITABLE = frozenset({"display_name", "role", "wecom_userid", "cohort_ids", "disabled"})
_SECRET = ("password_hash",)


def _username(value: str) -> str:
    if any(c.isspace() for c in value):
        raise ValueError("用户名不能包含空格")
    return value


Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=2, max_length=64),
    AfterValidator(_username),
]


class AccountCreate(Input):
    username: Username = Field(description="登录用的用户名，也记在操作日志里")
    display_name: OperatorName = Field(description="称呼，如 小鹿老师")
    role: Role
    password: str = Field(max_length=1000)
    wecom_userid: Ident | None = Field(default=None, description="助教的企业微信 userid")
    cohort_ids: list[CohortRef] = Field(default_factory=list, max_length=200)


class AccountUpdate(Input):
    display_name: OperatorName | None = None
    role: Role | None = None
    wecom_userid: Ident | None = None
    cohort_ids: list[CohortRef] | None = Field(default=None, max_length=200)
    disabled: bool | None = None


@dataclass(frozen=True, slots=True)
class AccountView:
    account: ConsoleAccount
    cohort_ids: tuple[int, ...]


def audit_shape(view: AccountView) -> dict[str, object]:
    return {**snapshot(view.account, exclude=_SECRET), "cohort_ids": list(view.cohort_ids)}


async def cohorts_of(*, session: AsyncSession, account_ids: Sequence[int]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {i: [] for i in account_ids}
    rows = await session.execute(
        select(AccountCohort.account_id, AccountCohort.cohort_id)
        .where(AccountCohort.account_id.in_(account_ids))
        .order_by(AccountCohort.cohort_id)
    )
    for account_id, cohort_id in rows:
        found[account_id].append(cohort_id)
    return found


async def get_account(*, session: AsyncSession, account_id: int) -> AccountView:
    account = await get_or_404(ConsoleAccount, account_id, session=session, what=WHAT)
    cohorts = await cohorts_of(session=session, account_ids=[account.id])
    return AccountView(account, tuple(cohorts[account.id]))


async def list_accounts(*, session: AsyncSession) -> list[AccountView]:
    accounts = (await session.scalars(select(ConsoleAccount).order_by(ConsoleAccount.id))).all()
    cohorts = await cohorts_of(session=session, account_ids=[a.id for a in accounts])
    return [AccountView(a, tuple(cohorts[a.id])) for a in accounts]


async def count_accounts(*, session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(ConsoleAccount)) or 0)


async def _check_cohorts(session: AsyncSession, cohort_ids: Collection[int]) -> None:
    if not cohort_ids:
        return
    known = set(await session.scalars(select(Cohort.id).where(Cohort.id.in_(cohort_ids))))
    missing = sorted(set(cohort_ids) - known)
    if missing:
        raise InvalidInput("cohort_ids", f"期次 {missing[0]} 不存在。")


async def _check_userid_free(
    session: AsyncSession, wecom_userid: str | None, account_id: int | None = None
) -> None:
    if wecom_userid is None:
        return
    other = await session.scalar(
        select(ConsoleAccount.username).where(
            ConsoleAccount.wecom_userid == wecom_userid, ConsoleAccount.id != (account_id or 0)
        )
    )
    if other is not None:
        raise Conflict(f"企业微信 userid「{wecom_userid}」已关联账号「{other}」。")


async def _set_cohorts(
    session: AsyncSession, account_id: int, cohort_ids: Collection[int]
) -> None:
    await session.execute(delete(AccountCohort).where(AccountCohort.account_id == account_id))
    session.add_all(AccountCohort(account_id=account_id, cohort_id=c) for c in set(cohort_ids))
    await session.flush()


async def create_account(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    username: str,
    display_name: str,
    role: Role,
    password: str,
    wecom_userid: str | None = None,
    cohort_ids: Collection[int] = (),
) -> AccountView:
    check_password_rules(password)
    hashed = await hash_password(password)  # before any query: no transaction held meanwhile
    taken = await session.scalar(
        select(ConsoleAccount.id).where(ConsoleAccount.username == username)
    )
    if taken is not None:
        raise Conflict(f"用户名「{username}」已被使用。")
    await _check_userid_free(session, wecom_userid)
    await _check_cohorts(session, cohort_ids)
    account = ConsoleAccount(
        username=username,
        display_name=display_name,
        role=role,
        password_hash=hashed,
        wecom_userid=wecom_userid,
        failed_logins=0,
        password_changed_at=now,
        created_at=now,
        updated_at=now,
    )
    session.add(account)
    await flush_or_conflict(session, f"用户名「{username}」已被使用。")
    await _set_cohorts(session, account.id, cohort_ids)
    view = AccountView(account, tuple(sorted(set(cohort_ids))))
    await AUDIT.record(
        "create", account.id, session=session, actor=actor, now=now, after=audit_shape(view)
    )
    return view


async def _keep_an_admin(session: AsyncSession, account: ConsoleAccount) -> None:
    others = await session.scalar(
        select(func.count())
        .select_from(ConsoleAccount)
        .where(
            ConsoleAccount.role == Role.ADMIN,
            ConsoleAccount.disabled_at.is_(None),
            ConsoleAccount.id != account.id,
        )
    )
    if not others:
        raise Conflict("至少要保留一个可用的管理员账号。")


async def update_account(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    account_id: int,
    changes: Mapping[str, Any],
) -> AccountView:
    """Apply the given fields (already validated); `disabled` ends the sessions."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    view = await get_account(session=session, account_id=account_id)
    account, before = view.account, audit_shape(view)
    demoted = changes.get("role", account.role) != Role.ADMIN or changes.get("disabled")
    if account.role == Role.ADMIN and account.disabled_at is None and demoted:
        await _keep_an_admin(session, account)
    if "wecom_userid" in changes:
        await _check_userid_free(session, changes["wecom_userid"], account.id)
    if changes.get("cohort_ids") is not None:
        await _check_cohorts(session, changes["cohort_ids"])
        await _set_cohorts(session, account.id, changes["cohort_ids"])
    for key in ("display_name", "role", "wecom_userid"):
        if key in changes and (key == "wecom_userid" or changes[key] is not None):
            setattr(account, key, changes[key])
    if changes.get("disabled") is not None:
        account.disabled_at = (account.disabled_at or now) if changes["disabled"] else None
        if changes["disabled"]:
            await end_sessions(session=session, account_id=account.id, now=now)
    view = await get_account(session=session, account_id=account.id)
    if audit_shape(view) != before:
        account.updated_at = now
        await flush_or_conflict(session, "与已有账号冲突，请刷新后重试。")
        after = audit_shape(view)
        await AUDIT.record(
            "update", account.id, session=session, actor=actor, now=now, before=before, after=after
        )
    return view


async def set_password(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    account_id: int,
    password: str,
    field: str = "password",
) -> ConsoleAccount:
    """A new password; every session of the account ends (the caller opens a new one for
    the browser that changed it), and a lockout is lifted."""
    check_password_rules(password, field=field)
    hashed = await hash_password(password)  # before any query: no transaction held meanwhile
    account = await get_or_404(ConsoleAccount, account_id, session=session, what=WHAT)
    account.password_hash = hashed
    account.password_changed_at = account.updated_at = now
    account.failed_logins, account.locked_until = 0, None
    await end_sessions(session=session, account_id=account.id, now=now)
    await AUDIT.record("set_password", account.id, session=session, actor=actor, now=now)
    return account


async def end_sessions(*, session: AsyncSession, account_id: int, now: datetime) -> None:
    await session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.account_id == account_id, ConsoleSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    await session.flush()
