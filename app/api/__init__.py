"""HTTP routes; `api_router` includes them all."""

from fastapi import APIRouter

from app.api import callback, health
from app.api.admin import admin_router

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(callback.router)
api_router.include_router(admin_router)
