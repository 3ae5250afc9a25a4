"""Group joins: robot groups greet their newcomers in batches, customer groups' WeCom welcome
template follows the cohort's script, member lists are re-read after a lost callback."""

from app.capability import BackgroundLoop, Capability
from bots.dispatch import Router
from bots.group_welcome import handlers
from bots.group_welcome.loop import run_group_welcome

capability: Capability[Router] = Capability(
    name="group_welcome",
    event_routers=(handlers.router,),
    loops=(BackgroundLoop("group_welcome", run_group_welcome),),
)
