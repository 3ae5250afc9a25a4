"""The HTTP routes capabilities add, for `app.main` to include."""

from __future__ import annotations

from fastapi import APIRouter

from bots.checkin import api as checkin_api
from bots.checkin import rules_api as checkin_rules_api
from bots.qa import api as qa_api
from bots.stats import api as stats_api
from bots.student_page import pages as student_pages
from bots.xibao import api as xibao_api

# Included under /admin/api; each authenticates like every admin resource.
ADMIN_ROUTERS: tuple[APIRouter, ...] = (
    checkin_api.router,
    checkin_rules_api.router,
    qa_api.router,
    xibao_api.router,
    stats_api.router,
)
# Included as they are (the student's H5 pages: the signed token is the credential).
PUBLIC_ROUTERS: tuple[APIRouter, ...] = (student_pages.router,)
