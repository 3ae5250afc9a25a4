"""Membership: members, groups and group membership kept in step with WeCom events."""

from app.capability import Capability
from bots.dispatch import Router
from bots.membership import handlers

capability: Capability[Router] = Capability(name="membership", event_routers=(handlers.router,))
