"""群SOP and the staff sidebar: pushes to customer groups and external students that staff
post from the chat toolbar, told, reminded and escalated; the 聊天工具栏 page itself."""

from app.capability import Capability
from bots.dispatch import Router
from bots.sop import api, console, jobs, sidebar, sidebar_api

capability: Capability[Router] = Capability(
    name="sop",
    admin_routers=(api.router, api.settings_router),
    public_routers=(sidebar.router, sidebar_api.router),
    loops=jobs.LOOPS,
    console_pages=(console.PAGES,),
)
