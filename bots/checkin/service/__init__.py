"""Check-in services: keyword-only functions over a session; handlers and views stay thin.

CONTRACT (shared by the H5 views, the app 1:1 handler, reminders, stats and the demo):
the names and fields below are relied on elsewhere; add, do not rename.

The rules (per cohort, `bots.checkin.rules.RuleSet`; the counting in `bots.checkin.scoring`):
- Camp day 0 is 开营 (`start_date` in the cohort's time zone); a day runs from the rule's
  `day_boundary` (04:00) to the next day's. Check-in is open on days 0..cohort.days.
- Submitting again for the same day and kind edits the entry (text, images): one row,
  points once. 补卡 (a past `day`) is allowed `makeup_days` back and earns
  `checkin_points - makeup_cost` (≥ 0); homework for a past day follows the same window and
  earns its full points. 请假 (today, or a past day in the 补卡 window, at most
  `leave_limit` per cohort) pauses the streak; a check-in later on that day replaces it.
- Every change recomputes the member's `MemberScore` in the same transaction.

Functions flush but never commit: the caller owns the transaction. One module a part:
`writes` (submissions, 请假, recomputing), `reads` (standing, the page, the leaderboard, who
has not checked in), `review` (homework review), over `place` (where a member stands) and
`values` (what they answer with).
"""

from bots.checkin.service.place import camp_day, member_cohort
from bots.checkin.service.reads import (
    leaderboard,
    member_page,
    not_checked_in,
    rules_in_force,
    standing,
)
from bots.checkin.service.review import (
    Reviewed,
    Scope,
    Submission,
    get_submission,
    list_submissions,
    notice_text,
    review,
)
from bots.checkin.service.today import CohortToday, cohorts_today
from bots.checkin.service.values import (
    CHECKIN_TEXT,
    FALLBACK_NAME,
    MAX_IMAGES,
    MAX_TEXT,
    CampDay,
    CheckinError,
    EntryView,
    LeaderRow,
    MemberPage,
    Standing,
    SubmitResult,
    entry_view,
    is_checkin_text,
    makeup_window,
)
from bots.checkin.service.writes import recompute_cohort, submit, take_leave, update_rules

__all__ = [
    "CHECKIN_TEXT",
    "FALLBACK_NAME",
    "MAX_IMAGES",
    "MAX_TEXT",
    "CampDay",
    "CheckinError",
    "CohortToday",
    "EntryView",
    "LeaderRow",
    "MemberPage",
    "Reviewed",
    "Scope",
    "Standing",
    "Submission",
    "SubmitResult",
    "camp_day",
    "cohorts_today",
    "entry_view",
    "get_submission",
    "is_checkin_text",
    "leaderboard",
    "list_submissions",
    "makeup_window",
    "member_cohort",
    "member_page",
    "not_checked_in",
    "notice_text",
    "recompute_cohort",
    "review",
    "rules_in_force",
    "standing",
    "submit",
    "take_leave",
    "update_rules",
]
