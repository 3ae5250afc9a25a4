"""Calling back once a session's work is committed, and never if it is rolled back.

SQLAlchemy's own `after_commit` event is not enough on its own: it also fires when a
savepoint is released (the outer transaction may still roll back), and a `once` listener
left by a rolled-back transaction fires on the session's next, unrelated commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

_PENDING = "app.commit_hooks"


@dataclass(eq=False)
class _Pending:
    # The transaction (a savepoint's, or the outer one) whose commit is waited for; None:
    # the session has none yet, so the next one it begins.
    transaction: SessionTransaction | None
    action: Callable[[], object]


def call_after_commit(session: AsyncSession, action: Callable[[], object]) -> None:
    """Call `action` once the session's current transaction (its innermost savepoint
    included) is committed to the database; never if it rolls back. The same `action`
    asked for again in that transaction is called once."""
    sync = session.sync_session
    pending: list[_Pending] | None = sync.info.get(_PENDING)
    if pending is None:
        pending = sync.info[_PENDING] = []
        event.listen(sync, "after_transaction_create", _began)
        event.listen(sync, "after_commit", _committed)
        event.listen(sync, "after_transaction_end", _ended)
    current = sync.get_nested_transaction() or sync.get_transaction()
    if any(p.action == action and p.transaction in _enclosing(current) for p in pending):
        return
    pending.append(_Pending(current, action))


def _enclosing(transaction: SessionTransaction | None) -> list[SessionTransaction | None]:
    if transaction is None:
        return [None]
    chain: list[SessionTransaction | None] = []
    while transaction is not None:
        chain.append(transaction)
        transaction = transaction.parent
    return chain


def _began(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        for p in session.info[_PENDING]:
            if p.transaction is None:
                p.transaction = transaction


def _committed(session: Session) -> None:
    # Called while the committing transaction is still the session's current one.
    committed = session.get_nested_transaction() or session.get_transaction()
    pending: list[_Pending] = session.info[_PENDING]
    if committed is not None and committed.nested:
        # A savepoint released: its work now stands or falls with the enclosing transaction.
        for p in pending:
            if p.transaction is committed:
                p.transaction = committed.parent
        return
    due = [p for p in pending if p.transaction is committed]
    pending[:] = [p for p in pending if p.transaction is not committed]
    for p in due:
        p.action()


def _ended(session: Session, transaction: SessionTransaction) -> None:
    # A committed transaction's actions were already taken or moved on: what is left
    # waited for a transaction that rolled back (or was closed without committing).
    pending: list[_Pending] = session.info[_PENDING]
    pending[:] = [p for p in pending if p.transaction is not transaction]
