"""The platform's console pages (cohorts and their groups and members, the outbox), in one
tuple for `app.main` to hand to the console, as `app.admin.api` gathers their admin routes."""

from __future__ import annotations

from app.admin.cohorts import console as cohorts
from app.admin.groups import console as groups
from app.admin.members import console as members
from app.admin.outbox import console as outbox
from app.console.pages import ConsolePages

PAGES: tuple[ConsolePages, ...] = (cohorts.PAGES, groups.PAGES, members.PAGES, outbox.PAGES)
