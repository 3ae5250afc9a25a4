"""Camp statistics: check-in and homework rates, drop-off, streaks, per group and per
assistant, participation and 上岸 — the admin API's `stats` resource, JSON, CSV and SVG."""

from app.capability import Capability
from bots.dispatch import Router
from bots.stats import api, console

capability: Capability[Router] = Capability(
    name="stats", admin_routers=(api.router,), console_pages=(console.PAGES,)
)
