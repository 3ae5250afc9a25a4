"""`/admin/api/achievements` and `/admin/api/broadcasts`: 喜报 and their progress."""

from __future__ import annotations

from app.api.admin.route import admin_resource_router

router = admin_resource_router("", "xibao")
