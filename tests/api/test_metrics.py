"""`/metrics`: off without METRICS_TOKEN (404), 401 without the bearer token, and with it the
Prometheus text of what this process counted and what the database holds now."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import quota
from app.clock import ManualClock
from app.models import InboxStatus
from app.settings import QuotaMode
from app.wecom_sandbox.callbacks import CallbackBuilder
from tests.api.conftest import METRICS_TOKEN
from tests.support import CORP_ID, T0, AppHarness, inbox_rows, text_message


async def scrape(harness: AppHarness) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await harness.client.get(
        "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return float(samples.get((name, tuple(sorted(labels.items()))), 0.0))


async def test_metrics_are_off_without_a_token(harness: AppHarness) -> None:
    response = await harness.client.get("/metrics")
    assert response.status_code == 404
    assert "METRICS_TOKEN" in response.text


async def test_metrics_need_the_bearer_token(metered: AppHarness) -> None:
    assert (await metered.client.get("/metrics")).status_code == 401
    wrong = {"Authorization": "Bearer not-the-metrics-token"}
    response = await metered.client.get("/metrics", headers=wrong)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_callbacks_handlers_and_the_inbox_are_counted(
    metered: AppHarness, wecom: CallbackBuilder
) -> None:
    before = await scrape(metered)
    callback = wecom.post(text_message("91001", "请问回放在哪里看？"), at=T0)
    assert (await metered.deliver(callback)).status_code == 200
    assert (await metered.deliver(callback)).status_code == 200  # WeCom's retry
    forged = callback.path.replace("msg_signature=", "msg_signature=0")
    assert (await metered.client.post(forged, content=callback.body)).status_code == 403
    after = await scrape(metered)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    accepted = {"outcome": "accepted", "status": "200", "reason": ""}
    assert grew("campbot_callbacks_total", **accepted) == 1
    assert grew("campbot_callbacks_total", **{**accepted, "outcome": "duplicate"}) == 1
    refused = {"outcome": "refused", "status": "403", "reason": "signature"}
    assert grew("campbot_callbacks_total", **refused) == 1
    assert grew("campbot_events_total", outcome="handled") == 1
    assert (
        grew("campbot_handler_runs_total", handler="bots.qa.handlers.on_question", outcome="ok")
        == 1
    )
    assert (
        grew("campbot_handler_duration_seconds_count", handler="bots.qa.handlers.on_question") == 1
    )
    # Read from the database at the scrape: nothing left to handle.
    assert after.get(("campbot_inbox_pending", ())) == 0  # present, and zero
    assert ("campbot_inbox_oldest_pending_seconds", ()) in after


async def test_an_event_no_handler_registers_for_is_recorded_handled_at_intake(
    metered: AppHarness, wecom: CallbackBuilder, sessions: async_sessionmaker[AsyncSession]
) -> None:
    before = await scrape(metered)
    entered = (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        "<FromUserName><![CDATA[lisi]]></FromUserName>"
        f"<CreateTime>{int(T0.timestamp())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[enter_agent]]></Event><EventKey><![CDATA[]]></EventKey>"
        "<AgentID>1000002</AgentID></xml>"
    )
    assert (await metered.deliver(wecom.post(entered, at=T0))).status_code == 200
    # Already `handled` when the callback is answered: no handler run is queued for it.
    [row] = await inbox_rows(sessions)
    assert (row.kind, row.status, row.attempts) == ("event.enter_agent", InboxStatus.HANDLED, 1)
    after = await scrape(metered)
    assert (
        value(after, "campbot_events_total", outcome="no_handler")
        - value(before, "campbot_events_total", outcome="no_handler")
        == 1
    )
    assert value(after, "campbot_events_total", outcome="handled") == value(
        before, "campbot_events_total", outcome="handled"
    )
    assert after.get(("campbot_inbox_pending", ())) == 0  # present, and zero


async def test_the_quota_gauge_reads_each_targets_current_window(
    metered: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    last_month = clock.now() - timedelta(days=3)  # 2026-02-26
    async with sessions.begin() as session:
        for key, target, at in (
            ("a", "wrGroupA", clock.now()),
            ("b", "wrGroupA", clock.now()),
            ("c", "wrGroupB", last_month),  # February's window has ended
            ("d", "wmStudent", clock.now()),
        ):
            spent = await quota.spend(
                session=session,
                target=target,
                mode=QuotaMode.MONTH_DAYS,
                tz="Asia/Shanghai",
                now=at,
                outbox_key=key,
            )
            assert spent
    samples = await scrape(metered)
    used = "campbot_mass_send_quota_used"
    assert value(samples, used, target="wrGroupA", limit="31") == 2  # March has 31 days
    assert value(samples, used, target="wmStudent", limit="31") == 1
    assert not [key for key in samples if key[0] == used and ("target", "wrGroupB") in key[1]]
