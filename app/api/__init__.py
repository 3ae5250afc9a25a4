"""HTTP edges; `api_router` includes the health check, the metrics and the WeCom callback.

The admin resources are included by `app.main` (the platform's: `app.admin.api`).
"""

from fastapi import APIRouter

from app.api import callback, health, metrics

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(metrics.router)
api_router.include_router(callback.router)
