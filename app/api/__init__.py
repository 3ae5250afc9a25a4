"""HTTP routes; `api_router` includes them all."""

from fastapi import APIRouter

from app.api import callback, health

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(callback.router)
