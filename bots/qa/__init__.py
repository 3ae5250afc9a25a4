"""Keyword Q&A (问答): rules matched against members' questions to the app, answered as a
passive reply or an app message; the FAQ search the student page uses."""

from app.capability import Capability
from bots.dispatch import Router
from bots.qa import api, console, handlers

capability: Capability[Router] = Capability(
    name="qa",
    event_routers=(handlers.router,),
    admin_routers=(api.router,),
    console_pages=(console.PAGES,),
)
