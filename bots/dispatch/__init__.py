"""Routing events to handlers: `router` (the Router, Context and registrations handlers
use) with `rules` (what a registration matches on), `queue` (the run queue), `dispatcher`
(runs inbox rows through the routers, with passive replies), `batch` (fresh runs sharing a
transaction under a burst) and `after_commit` (what follows an event's commit).

The capabilities' routers reach the dispatcher through their registrations
(`app.capability.Capability.event_routers`), in the precedence order of
`app.main.CAPABILITIES`.
"""

from bots.dispatch.dispatcher import Dispatcher
from bots.dispatch.router import (
    Context,
    Outbound,
    PassiveFallback,
    Router,
    RuleResult,
    SkipHandler,
    run_handlers,
)

__all__ = [
    "Context",
    "Dispatcher",
    "Outbound",
    "PassiveFallback",
    "Router",
    "RuleResult",
    "SkipHandler",
    "run_handlers",
]
