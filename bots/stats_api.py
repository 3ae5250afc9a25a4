"""`/admin/api/stats`: per-day camp statistics, CSV and a chart."""

from __future__ import annotations

from app.api.admin.route import admin_resource_router

router = admin_resource_router("/stats", "stats")
