"""HTTP edges; `api_router` includes the health check and the WeCom callback.

The admin resources are included by `app.main` (the platform's: `app.admin.api`).
"""

from fastapi import APIRouter

from app.api import callback, health

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(callback.router)
