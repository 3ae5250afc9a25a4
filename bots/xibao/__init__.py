from app.capability import Capability
from bots.dispatch import Router
from bots.xibao import api, console

capability: Capability[Router] = Capability(
    name="xibao", admin_routers=(api.router,), console_pages=(console.PAGES,)
)
