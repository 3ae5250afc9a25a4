"""HTTP edges: `api_router` includes the health check and the metrics; `callback_routes` are
the WeCom callback's, which `app.main` puts on the app itself, matched first: behind included
routers each callback spent ~34 µs just being routed (~13% of its intake).

The admin resources are included by `app.main` (the platform's: `app.admin.api`).
"""

from fastapi import APIRouter

from app.api import callback, health, metrics

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(metrics.router)
callback_routes = callback.router.routes
