"""A cohort's 群SOP timing, with the defaults when it set none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bots.sop.models import ESCALATE_AFTER_MINUTES, REMIND_AFTER_MINUTES, SopSettings


@dataclass(frozen=True, slots=True)
class Timing:
    remind: int = REMIND_AFTER_MINUTES  # minutes after an item's time
    escalate: int = ESCALATE_AFTER_MINUTES
    operators: tuple[str, ...] = ()


def timing_of(row: SopSettings | None) -> Timing:
    if row is None:
        return Timing()
    operators = tuple(str(u) for u in (row.operator_userids or []) if u)
    return Timing(row.remind_after_minutes, row.escalate_after_minutes, operators)


def overdue_at(due_at: datetime, timing: Timing) -> datetime:
    """When an open item is overdue: escalated to operators, posted late, shown as 超时 in the
    sidebar — one rule for all three."""
    return due_at + timedelta(minutes=timing.escalate)
