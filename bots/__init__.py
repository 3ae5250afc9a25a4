"""What CampBot does: one router per capability, in precedence order."""

from bots.checkin import handlers as checkin
from bots.checkin import reminders  # noqa: F401 - registers the not_checked_in_today filter
from bots.dispatch import Router
from bots.group_welcome import handlers as group_welcome
from bots.membership import handlers as membership
from bots.qa import handlers as qa
from bots.welcome import handlers as welcome

ROUTERS: tuple[Router, ...] = (
    membership.router,
    welcome.router,
    group_welcome.router,
    checkin.router,
    qa.router,
)
