"""Homework review (`/admin/api/checkins`) and per-cohort check-in rules."""

from __future__ import annotations

from app.api.admin.route import admin_resource_router

router = admin_resource_router("", "checkins")
