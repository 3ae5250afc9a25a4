"""The last camp day of the longest cohort (366 days: day 0 开营 .. day 366) can be asked
about like any other: no off-by-one in the statistics API's day bounds."""

from __future__ import annotations

from datetime import timedelta

import bots.xibao.models  # noqa: F401 - the stats join the 喜报 tables
from app.clock import ManualClock
from tests.admin.conftest import Admin, problems
from tests.support import T0

LONGEST = 366  # app.api.admin.fields.Days' upper bound


async def test_day_366_of_a_366_day_camp(admin: Admin, clock: ManualClock) -> None:
    start = (T0 - timedelta(days=LONGEST + 3)).date()
    cohort = await admin.cohort(start_date=start.isoformat(), days=LONGEST)
    base = f"/stats/cohorts/{cohort['id']}"

    last = await admin.get(f"{base}/participation", params={"day": LONGEST})
    assert last.status_code == 200, last.text
    assert last.json()["day"] == LONGEST
    stats = await admin.get(base, params={"base_day": LONGEST})
    assert stats.status_code == 200, stats.text
    assert stats.json()["dropoff"]["base_day"] == LONGEST
    # One past the end is refused with the reason, in Chinese.
    after = await admin.get(f"{base}/participation", params={"day": LONGEST + 1})
    assert problems(after)["day"]
