"""`/admin/api/qa-rules`, `/admin/api/qa/unanswered`: Q&A rules, questions nothing answered."""

from __future__ import annotations

from app.api.admin.route import admin_resource_router

router = admin_resource_router("", "qa")
