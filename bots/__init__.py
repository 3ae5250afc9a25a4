"""What CampBot does: one router per capability, in precedence order."""

from bots import membership, welcome
from bots.dispatch import Router

ROUTERS: tuple[Router, ...] = (membership.router, welcome.router)
