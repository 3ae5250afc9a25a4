"""HTTP edges: `api_router` includes the health check and the metrics. The WeCom callback is
not a route: `app.api.callback_asgi` answers it ahead of the framework (`app.main`).

The admin resources are included by `app.main` (the platform's: `app.admin.api`).
"""

from fastapi import APIRouter

from app.api import health, metrics

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(metrics.router)
