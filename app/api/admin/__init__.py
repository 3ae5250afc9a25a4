"""`/admin/api`: the operators' JSON API (ARCHITECTURE §4).

Every route needs `Authorization: Bearer <ADMIN_TOKEN or an operator token>`. Resource
modules declare their routes on `deps.admin_resource_router(...)` (an `AdminRoute` router: one
authenticated, committed-once unit of work per request) and are included here.
"""

from fastapi import APIRouter

from app.api.admin import audit, cohorts, groups, members, outbox, tokens

admin_router = APIRouter(prefix="/admin/api")
for module in (cohorts, groups, members, outbox, tokens, audit):
    admin_router.include_router(module.router)
