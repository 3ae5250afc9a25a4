"""The welcome: enrolment by channel, the welcome message with the personal link inside
WeCom's 20-second window, the channel tag, and the 流失提醒 when a student leaves."""

from app.capability import Capability
from bots.dispatch import Router
from bots.welcome import handlers

capability: Capability[Router] = Capability(name="welcome", event_routers=(handlers.router,))
