"""The console's templates: one autoescaping Jinja2 environment over the shell's templates
(`console/…`) and each capability's (`<name>/…`), the navigation, and `render`.

Everything a student or an operator typed reaches a page as text: autoescape is on for every
template, and no template marks stored text safe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, PrefixLoader, StrictUndefined

from app.api.admin.throttle import AuthThrottle
from app.console import labels
from app.console.models import ROLE_NAMES
from app.console.pages import ConsolePages, HomePanel, NavItem

HTMX = "vendor/htmx-2.0.11/htmx.min.js"


@dataclass(slots=True)
class Console:
    """What the console keeps per app: templates, navigation, 今日 panels, the sign-in
    throttle and the session key once read."""

    env: Environment
    nav: tuple[NavItem, ...]
    panels: tuple[HomePanel, ...]
    throttle: AuthThrottle
    keys: dict[str, bytes] = field(default_factory=dict)


def build_environment(pages: Sequence[ConsolePages]) -> Environment:
    loaders: dict[str, Any] = {"console": PackageLoader("app.console", "templates")}
    for page in pages:
        if page.templates is not None:
            loaders[page.name] = PackageLoader(page.templates, "templates/console")
    env = Environment(
        loader=PrefixLoader(loaders),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(labels.FILTERS)
    env.globals.update(role_names=ROLE_NAMES, htmx=HTMX)
    return env


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def local_time(value: datetime | None, tz: str, fmt: str = "%m-%d %H:%M") -> str:
    return value.astimezone(ZoneInfo(tz)).strftime(fmt) if value is not None else ""


def _common(request: Request, console: Console) -> dict[str, Any]:
    runtime = request.app.state.runtime
    tz = runtime.settings.campbot_timezone
    viewer = getattr(request.state, "console_viewer", None)
    nav = [n for n in console.nav if viewer is not None and viewer.at_least(n.role)]
    path = request.url.path
    return {
        "request": request,
        "viewer": viewer,
        "nav": nav,
        "current": max(
            (n.path for n in nav if path == n.path or path.startswith(n.path.rstrip("/") + "/")),
            key=len,
            default="",
        ),
        "csrf": viewer.csrf_token if viewer is not None else "",
        "tz": tz,
        "now": runtime.clock.now(),
        "local": lambda value, fmt="%m-%d %H:%M": local_time(value, tz, fmt),
        "partial": bool(request.headers.get("hx-request"))
        and not request.headers.get("hx-boosted"),
    }


def render(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
) -> HTMLResponse:
    return HTMLResponse(fragment(request, name, context), status_code=status)


def pager(*, number: int, total: int, size: int, query: Mapping[str, Any]) -> dict[str, Any]:
    """A listing's pager: `page` (this one, how many, how many rows) and `query(n)`, the
    query string of page n with the same filters."""
    return {
        "page": {"number": number, "pages": max(1, math.ceil(total / size)), "total": total},
        "query": lambda n: urlencode({**query, "page": n}),
    }


def fragment(request: Request, name: str, context: Mapping[str, Any] | None = None) -> str:
    """The template rendered to a string (a 今日 panel, an htmx swap)."""
    console = console_of(request)
    return console.env.get_template(name).render({**_common(request, console), **(context or {})})


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(
        request, "console/error.html", {"status": status, "message": message}, status=status
    )
