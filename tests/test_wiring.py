"""Every capability's parts reach their consumer exactly once: routers in the app, event
routers in the dispatcher (in precedence order), jobs, filters, providers, loops and
cohort hooks in the Extensions the Runtime keeps; a name given twice is refused."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from fastapi.routing import APIRoute

from app.capability import Capability, Extensions, MemberFilter, ScriptJob, WiringError
from app.main import CAPABILITIES
from app.runtime import Runtime
from app.settings import Settings
from bots.dispatch import Dispatcher, Router
from tests.support import AppHarness


def test_the_capabilities_have_one_name_each_and_contribute_something() -> None:
    names = [c.name for c in CAPABILITIES]
    assert len(names) == len(set(names))
    for capability in CAPABILITIES:
        assert capability != Capability(name=capability.name), capability.name


async def test_each_admin_and_public_router_is_in_the_app_once(harness: AppHarness) -> None:
    # FastAPI (0.165) keeps an included router as one entry that remembers it.
    included = Counter(id(getattr(r, "original_router", None)) for r in harness.app.routes)
    contributed = [r for c in CAPABILITIES for r in (*c.admin_routers, *c.public_routers)]
    assert len(contributed) == len({id(r) for r in contributed}) == 12
    assert [included[id(r)] for r in contributed] == [1] * len(contributed)
    # ...and serves its routes where they belong.
    paths = harness.app.openapi()["paths"]
    for capability in CAPABILITIES:
        for router, prefix in (
            *((r, "/admin/api") for r in capability.admin_routers),
            *((r, "") for r in capability.public_routers),
        ):
            for route in router.routes:
                assert isinstance(route, APIRoute)
                if route.include_in_schema:
                    assert route.methods <= {m.upper() for m in paths[prefix + route.path]}


async def test_the_dispatcher_has_each_event_router_once_in_precedence_order(
    harness: AppHarness,
) -> None:
    runtime: Runtime = harness.app.state.runtime
    assert isinstance(runtime.processor, Dispatcher)
    expected = [router for c in CAPABILITIES for router in c.event_routers]
    assert [r.name for r in expected] == [
        "membership",
        "welcome",
        "group_welcome",
        "checkin",
        "qa",
    ]
    assert list(runtime.processor.routers) == expected  # the same objects, once each
    assert list(runtime.processor.cohort_hooks) == list(runtime.extensions.cohort_hooks.values())


async def test_the_runtime_holds_each_job_filter_provider_loop_and_hook_once(
    harness: AppHarness,
) -> None:
    extensions = harness.app.state.runtime.extensions
    parts = {
        "script_jobs": [j.script_key for c in CAPABILITIES for j in c.script_jobs],
        "member_filters": [f.name for c in CAPABILITIES for f in c.member_filters],
        "context_providers": [p.name for c in CAPABILITIES for p in c.context_providers],
        "loops": [loop.name for c in CAPABILITIES for loop in c.loops],
        "cohort_hooks": [h.name for c in CAPABILITIES for h in c.cohort_hooks],
    }
    assert {kind: list(getattr(extensions, kind)) for kind in parts} == parts
    assert parts == {
        "script_jobs": ["checkin_reminder", "leaderboard"],
        "member_filters": ["not_checked_in_today"],
        "context_providers": ["checkin.members", "checkin.groups"],
        "loops": ["group_welcome", "sop"],
        "cohort_hooks": ["replan"],
    }


@pytest.mark.parametrize(
    ("twice", "message"),
    [
        (lambda c: replace(c, name="welcome"), "capability 'welcome'"),
        (
            lambda c: replace(c, name="again", script_jobs=c.script_jobs[:1]),
            "script job 'checkin_reminder'",
        ),
        (
            lambda c: replace(c, name="again", script_jobs=(), context_providers=()),
            "member filter 'not_checked_in_today'",
        ),
    ],
)
def test_a_name_given_twice_is_refused(twice, message: str, settings: Settings) -> None:
    checkin = next(c for c in CAPABILITIES if c.name == "checkin")
    with pytest.raises(WiringError, match=message):
        Extensions.of((*CAPABILITIES, twice(checkin)), settings=settings)


async def test_a_bound_job_gets_the_settings_it_was_wired_with(settings: Settings) -> None:
    seen: list[str] = []

    async def job(*, session, cohort_id, now, settings: Settings) -> int:
        seen.append(settings.public_base_url)
        return cohort_id

    async def everyone(session, query, cohort_id, now):
        return query

    probe: Capability[Router] = Capability(
        name="probe",
        script_jobs=(ScriptJob("probe", job),),
        member_filters=(MemberFilter("everyone", everyone),),
    )
    probe_settings = settings.model_copy(update={"public_base_url": "https://probe.example.com"})
    wired = Extensions.of((probe,), settings=probe_settings)
    bound = wired.job_for("probe", 7)
    assert bound is not None
    assert wired.job_for("probe", None) is None  # jobs work per cohort
    assert await bound(None, 7, None) == 7  # type: ignore[arg-type]
    assert seen == ["https://probe.example.com"]
    assert list(wired.member_filters) == ["everyone"]
