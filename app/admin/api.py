"""The platform's own admin resources under /admin/api, in one router for `app.main` to include.

Each resource is a package of the same shape: `api.py` (its routes, thin: parse → service →
response) and `service.py` (the work and the audit). The audit log's listing is shared
plumbing and lives in `app.api.admin.audit`.
"""

from fastapi import APIRouter

from app.admin.cohorts import api as cohorts
from app.admin.groups import api as groups
from app.admin.members import api as members
from app.admin.outbox import api as outbox
from app.admin.tokens import api as tokens
from app.api.admin import audit

router = APIRouter()
for module in (cohorts, groups, members, outbox, tokens, audit):
    router.include_router(module.router)
