"""喜报: achievements rendered as a script and a poster, fanned out to the cohort's groups.

No event handler yet: operators record achievements through the admin API
(`bots/xibao_api.py`) and students report theirs on the H5 page
(`bots.xibao_service.report_achievement`); the work is in `bots/xibao_service.py`.
"""

from __future__ import annotations

from bots import xibao_models  # noqa: F401 - registers the 喜报 tables with the metadata
from bots.dispatch import Router

router = Router("xibao")
