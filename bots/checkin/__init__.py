"""Check-in (打卡) and homework (作业): rules per cohort, entries, streaks, points, ranks,
reminders, the leaderboard and homework review."""

from app.capability import Capability
from bots.checkin import api, console, handlers, jobs
from bots.dispatch import Router

capability: Capability[Router] = Capability(
    name="checkin",
    event_routers=(handlers.router,),
    admin_routers=(api.router, api.rules_router),
    script_jobs=jobs.SCRIPT_JOBS,
    member_filters=jobs.MEMBER_FILTERS,
    context_providers=jobs.CONTEXT_PROVIDERS,
    console_pages=(console.PAGES,),
)
