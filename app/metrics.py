"""Prometheus metrics: what this process counted, and what the database says on a scrape.

Counters and histograms live in this process (prometheus-client's default registry, with
its process and Python collectors): each instance serves its own at `/metrics`, and
Prometheus scrapes every instance (their sum is the service's). The gauges that describe
shared state — the inbox backlog, the outbox by status and channel, the mass-send quota
used — are read from the database when `/metrics` is scraped (`database_gauges`), with
small indexed queries, so every instance reports the same numbers: take one (`max`) in
queries, not the sum.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import (
    InboxEvent,
    InboxStatus,
    MassSendQuotaSlot,
    OutboxMessage,
    OutboxStatus,
)
from app.quota import window_of
from app.settings import QuotaMode

# --------------------------------------------------------------------------- intake

CALLBACKS = Counter(
    "campbot_callbacks",
    "POSTed WeCom callbacks by outcome: accepted, duplicate (a retry), or refused with "
    "its status and reason",
    ["outcome", "status", "reason"],
)
ACCEPTED = CALLBACKS.labels("accepted", "200", "")
DUPLICATE = CALLBACKS.labels("duplicate", "200", "")

# --------------------------------------------------------------------------- handlers

_HANDLER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
HANDLER_RUNS = Counter(
    "campbot_handler_runs",
    "Handler runs by handler and outcome: ok, skipped (SkipHandler), error",
    ["handler", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "campbot_handler_duration_seconds",
    "Time one handler took, by handler",
    ["handler"],
    buckets=_HANDLER_BUCKETS,
)
EVENTS = Counter(
    "campbot_events",
    "Inbox events run by outcome: handled, failed, retry (left for the sweeper), taken "
    "(another worker had it), no_handler (recorded handled at intake: nothing to run), "
    "deferred (past 10,000 queued runs: read back from the inbox once there is room)",
    ["outcome"],
)

# --------------------------------------------------------------------------- sending

SENDS = Counter(
    "campbot_sends",
    "Send attempts by channel and WeCom errcode (0: accepted; transport: no answer; "
    "internal: the row could not be built)",
    ["channel", "errcode"],
)
RATE_LIMIT_WAITS = Counter(
    "campbot_rate_limit_waits",
    "Due rows moved to their target's next free slot (WeCom's per-robot and per-member "
    "limits), by channel",
    ["channel"],
)
TOKEN_REFRESHES = Counter(
    "campbot_wecom_token_refreshes",
    "Credentials fetched from WeCom, by kind (access_token, jsapi_ticket, agent_ticket) and "
    "outcome",
    ["kind", "outcome"],
)

# --------------------------------------------------------------------------- scheduler

SCHEDULER_LATENESS = Histogram(
    "campbot_scheduler_lateness_seconds",
    "Per firing: from its due time to the start of the transaction writing its messages",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 600.0),
)
SCHEDULER_LEADER = Gauge("campbot_scheduler_leader", "1 while this instance leads the scheduler")
SCHEDULER_LEADERSHIPS = Counter(
    "campbot_scheduler_leaderships", "Times this instance became the scheduler's leader"
)


# --------------------------------------------------------------------------- on scrape

# Mass sends are the ones whose quota (per customer group / customer) matters;
# the busiest targets are listed (a camp has hundreds of groups, not millions).
QUOTA_TARGETS = 500
_LIVE = (OutboxStatus.PENDING, OutboxStatus.CLAIMED, OutboxStatus.SENDING, OutboxStatus.DEAD)


async def database_gauges(*, session: AsyncSession, now: datetime) -> list[Metric]:
    """The shared state's gauges, read now. `sent` and `cancelled` outbox rows are not
    counted here (their number only grows): `campbot_sends_total` counts sends."""
    inbox = GaugeMetricFamily("campbot_inbox_pending", "Inbox events received and not handled yet")
    oldest = GaugeMetricFamily(
        "campbot_inbox_oldest_pending_seconds", "Age of the oldest event not handled yet"
    )
    count, first = (
        await session.execute(
            select(func.count(), func.min(InboxEvent.received_at)).where(
                InboxEvent.status == InboxStatus.RECEIVED
            )
        )
    ).one()
    inbox.add_metric([], count)
    oldest.add_metric([], _age(first, now))
    outbox = GaugeMetricFamily(
        "campbot_outbox_rows",
        "Outbox rows waiting, in flight or dead, by status and channel",
        labels=["status", "channel"],
    )
    rows = await session.execute(
        select(OutboxMessage.status, OutboxMessage.channel, func.count())
        .where(OutboxMessage.status.in_(_LIVE))
        .group_by(OutboxMessage.status, OutboxMessage.channel)
    )
    for status, channel, n in rows:
        outbox.add_metric([status, channel], n)
    due = GaugeMetricFamily(
        "campbot_outbox_oldest_due_seconds", "How long the longest-waiting due row has waited"
    )
    first_due = await session.scalar(
        select(func.min(OutboxMessage.not_before)).where(
            OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.not_before <= now
        )
    )
    due.add_metric([], _age(first_due, now))
    return [inbox, oldest, outbox, due, await _quota(session, now)]


async def _quota(session: AsyncSession, now: datetime) -> Metric:
    quota = GaugeMetricFamily(
        "campbot_mass_send_quota_used",
        "群发 slots each customer group or customer has spent in its current quota window "
        "(app.quota: a month, a week or a day on the camp's calendar, WECOM_MASS_SEND_QUOTA), "
        f"those WeCom said were spent elsewhere included; the {QUOTA_TARGETS} busiest targets",
        labels=["target", "limit"],
    )
    # Each target's newest window; one that has ended (by the UTC date: a few hours late for
    # camps east of UTC) no longer counts.
    newest = (
        select(
            MassSendQuotaSlot.target.label("target"),
            func.max(MassSendQuotaSlot.window_start).label("start"),
        )
        .where(MassSendQuotaSlot.window_start >= (now - timedelta(days=31)).date())
        .group_by(MassSendQuotaSlot.target)
        .subquery()
    )
    slot, used = MassSendQuotaSlot, func.count().label("used")
    rows = await session.execute(
        select(slot.target, slot.mode, slot.window_start, used)
        .join(newest, (newest.c.target == slot.target) & (newest.c.start == slot.window_start))
        .group_by(slot.target, slot.mode, slot.window_start)
        .order_by(used.desc())
        .limit(QUOTA_TARGETS)
    )
    for target, mode, start, n in rows:
        window = window_of(QuotaMode(mode), start)
        if window.end > now.astimezone(UTC).date():
            quota.add_metric([target, str(window.limit)], n)
    return quota


def _age(since: datetime | None, now: datetime) -> float:
    return max((now - since).total_seconds(), 0.0) if since is not None else 0.0
