"""Putting the console into the app: `mount(app, pages)`, called once by `app.main`.

It includes the shell's routes and every capability's, serves the static files (the
stylesheet, the console's script and the vendored htmx) and keeps what the pages share on
`app.state.console`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.console import account_pages, shell
from app.console.pages import ConsolePages
from app.console.signin import address_throttle
from app.console.templating import Console, build_environment

STATIC = Path(__file__).resolve().parent / "static"


def mount(app: FastAPI, pages: Sequence[ConsolePages]) -> None:
    every = (*shell.PAGES, *pages, *account_pages.PAGES)
    names = [p.name for p in every]
    if len(names) != len(set(names)):
        raise ValueError(f"console pages named twice: {sorted(names)}")
    env = build_environment(every)
    for name in env.list_templates():  # compiled now, not by a request in the event loop
        env.get_template(name)
    app.state.console = Console(
        env=env,
        nav=tuple(sorted((n for p in every for n in p.nav), key=lambda n: n.order)),
        panels=tuple(sorted((h for p in every for h in p.home_panels), key=lambda h: h.order)),
        throttle=address_throttle(),
    )
    app.include_router(shell.public)
    for page in every:
        app.include_router(page.router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
