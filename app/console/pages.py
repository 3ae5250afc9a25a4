"""What a capability gives the console (`ConsolePages`): its routes, its entries in the
navigation, its panels on the 今日 page, and the folder its templates are in.

A capability declares its pages in `console.py` on `console_router(...)` (every route is a
`ConsoleRoute`: signed in, CSRF-checked, committed once) and lists them in its
`Capability(console_pages=...)`; `app.main` hands them all to `app.console.mount`, which
builds the navigation and the template loader from them. Nothing registers itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import APIRouter, Request

from app.console.models import Role


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str  # Chinese, as the menu shows it
    path: str  # where it leads, e.g. "/console/cohorts"
    role: Role = Role.OPERATOR  # the least role that sees it
    order: int = 100  # menu position, lowest first
    # Takes `?cohort_id=N`: shown as a tab on each cohort's page too.
    cohort_tab: bool = False


# Renders the panel's HTML for the request's viewer ("" shows nothing).
PanelRender = Callable[[Request], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class HomePanel:
    name: str
    render: PanelRender
    role: Role = Role.ASSISTANT
    order: int = 100


@dataclass(frozen=True, slots=True)
class ConsolePages:
    """One capability's (or platform resource's) console screens.

    `templates` names the package whose `templates/console/` folder holds its templates;
    they are addressed as `<name>/<file>` (e.g. `checkin/review.html`)."""

    name: str
    router: APIRouter
    nav: tuple[NavItem, ...] = ()
    home_panels: tuple[HomePanel, ...] = ()
    templates: str | None = None
