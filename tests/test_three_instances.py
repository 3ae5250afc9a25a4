"""Three complete `campbot serve` instances on one PostgreSQL, as production runs them behind
a load balancer, driven through a round-robin client; the scheduler's leader is killed
(`kill -9`) just before an `at` schedule is due.

WeCom is `campbot sandbox`, a process of its own. At once: a welcome storm whose WeCom
retries land on other instances, a 喜报 to 30 robot groups, group-join batches, the
customer groups' welcome template synced by three instances at start, and the `at` push
to the 30 groups. Then, from the sandbox's record and the tables: every welcome once,
every robot group its 喜报 and its push once (a send on the wire when its instance died
may repeat, counted `in_doubt`), each join batch once, one template, no robot ever more
than 20 messages in a rolling minute (nor a 45009), and the leader replaced within 10 s.
`pytest -s` prints the failover time and each push's lateness; so do failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import Cohort, CohortGroup, CohortMember
from app.models import Group, InboxEvent, Member, OutboxMessage
from app.wecom_sandbox import callback_xml
from app.wecom_sandbox.callbacks import CallbackBuilder, SignedCallback
from app.wecom_sandbox.records import MemberChange
from scripts_library.loader import DEFAULT_PACK, import_pack
from scripts_library.models import Script
from tests.processes import (
    CORP_ID,
    SandboxServer,
    ServerProcess,
    callback_builder,
    campbot_env,
    contact_added,
    database,
    deliveries,
    free_port,
    leaders,
    wait_until,
)
from tests.support import AES_KEY, TOKEN

pytestmark = pytest.mark.postgres

INSTANCES = 3
ROBOTS, GROUPS = 10, 30  # group n is reached through robot n % ROBOTS
# A push goes once to each destination: each robot (its three groups share it) and the
# customer group (a mass-send task).
PUSH_TARGETS = ROBOTS + 1
STUDENTS = 60
JOIN_GROUPS, JOINS_PER_GROUP = 5, 3
STAFF, STATE = "zhangsan", "three1"
ADMIN = "three-instances-admin-token"
CUSTOMER_CHAT = "wrThreeCustomer0001"
AT_DUE_IN_S = 5.0  # after the storm
KILL_BEFORE_DUE_S = 1.0
FAILOVER_S = 10.0
SETTLE_S = 60.0
ROBOT_LIMIT, ROBOT_WINDOW = 20, timedelta(minutes=1)
WEBHOOK = "/cgi-bin/webhook/send"


def robot(n: int) -> str:
    return f"three-robot-{n % ROBOTS:02d}"


def chat(n: int) -> str:
    return f"wrThreeGroup{n:04d}"


def student(n: int) -> str:
    return f"wmThree{n:04d}xxxxxxxxxxxxxxxxxxxx"


# --------------------------------------------------------------------------- setup


async def seed(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    """The cohort, its 30 robot groups and one customer group, the pack's scripts and a
    push script; a student to announce. (cohort id, the student's member id)."""
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        cohort = Cohort(
            name="第 9 期",
            camp="跨境电商 7 天实战营",
            start_date=date.today(),
            days=7,
            channel_state=STATE,
            timezone="Asia/Shanghai",
            created_at=now,
            updated_at=now,
        )
        groups = [
            Group(
                chat_id=chat(n),
                name=f"9期{n}群",
                channel="robot",
                robot_key=robot(n),
                created_at=now,
                updated_at=now,
            )
            for n in range(GROUPS)
        ]
        customer = Group(
            chat_id=CUSTOMER_CHAT,
            name="9期客户群",
            channel="customer",
            owner_userid=STAFF,
            created_at=now,
            updated_at=now,
        )
        star = Member(external_userid="wmThreeStar", name="小林", created_at=now, updated_at=now)
        session.add_all([cohort, *groups, customer, star])
        await session.flush()
        for group in [*groups, customer]:
            session.add(CohortGroup(group_id=group.id, cohort_id=cohort.id, linked_at=now))
        session.add(CohortMember(member_id=star.id, cohort_id=cohort.id, joined_at=now))
        packs = [DEFAULT_PACK / "00_onboarding.yaml", DEFAULT_PACK / "20_milestones.yaml"]
        await import_pack(session=session, paths=packs, author="test", now=now)
        session.add(
            Script(
                key="live_soon",
                title="直播提醒",
                category="daily",
                msgtype="text",
                body="{{ group_name }}的同学们，直播马上开始！",
                attachments=[],
                # Worth a 群发 slot: the customer group gets a mass-send task, not 群SOP.
                group_delivery="mass_send",
                schedule_hint=None,
                description="",
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        return cohort.id, star.id


async def prepare_sandbox(fake: httpx.AsyncClient) -> None:
    (await fake.post("/sandbox/users", json={"userid": STAFF})).raise_for_status()
    body = {"chat_id": CUSTOMER_CHAT, "owner": STAFF, "name": "9期客户群"}
    (await fake.post("/sandbox/customer-groups", json=body)).raise_for_status()
    for n in range(JOIN_GROUPS):
        body = {"chat_id": chat(n), "owner": STAFF, "name": f"9期{n}群"}
        (await fake.post("/sandbox/customer-groups", json=body)).raise_for_status()


# --------------------------------------------------------------------------- the cluster


@dataclass
class Cluster:
    """The instances, and WeCom's way of reaching them: round robin, and the next one when
    an instance does not answer (a load balancer's retry, or WeCom's)."""

    servers: list[ServerProcess]
    turn: Iterator[int] = field(default_factory=lambda: itertools.cycle(range(INSTANCES)))

    def alive(self) -> list[ServerProcess]:
        return [s for s in self.servers if s.process.alive()]

    async def post(self, http: httpx.AsyncClient, callback: SignedCallback, at: int) -> None:
        """Post to instance `at`, or the next ones while it does not answer."""
        for step in range(INSTANCES * 20):
            server = self.servers[(at + step) % INSTANCES]
            if not server.process.alive():
                continue
            try:
                response = await http.post(
                    server.base_url + callback.path,
                    content=callback.body,
                    headers={"content-type": "text/xml"},
                )
            except httpx.TransportError:
                await asyncio.sleep(0.1)
                continue
            assert response.status_code == 200, response.text
            return
        raise AssertionError("no instance answered the callback")

    async def admin(self, http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
        server = self.servers[next(self.turn)]
        response = await http.post(
            server.base_url + "/admin/api" + path,
            json=body,
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert response.status_code == 201, response.text
        return response.json()

    def leader_log(self) -> list[tuple[int, datetime]]:
        """(pid, when) of each time an instance said it leads the scheduler."""
        found = [led for s in self.servers for led in leaders(s.process.log_path)]
        return sorted(found, key=lambda found_: found_[1])


@contextlib.asynccontextmanager
async def cluster(workdir: Path, env: dict[str, str]) -> AsyncIterator[Cluster]:
    ports = [free_port() for _ in range(INSTANCES)]
    starting = [
        asyncio.to_thread(ServerProcess.start, workdir, env=env, port=port, name=f"campbot-{n}")
        for n, port in enumerate(ports)
    ]
    servers = list(await asyncio.gather(*starting))
    try:
        yield Cluster(servers)
    finally:
        await asyncio.gather(*(asyncio.to_thread(s.process.stop) for s in servers))


# --------------------------------------------------------------------------- WeCom's side


@dataclass
class WeCom:
    fake: httpx.AsyncClient
    cluster: Cluster
    builder: CallbackBuilder = field(default_factory=callback_builder)
    codes: dict[str, str] = field(default_factory=dict)  # student -> welcome code

    async def contact_added(self, n: int) -> SignedCallback:
        callback, self.codes[student(n)] = await contact_added(
            self.fake,
            self.builder,
            external_userid=student(n),
            name=f"学员{n}",
            staff=STAFF,
            state=STATE,
        )
        return callback

    async def welcome_storm(self, http: httpx.AsyncClient) -> None:
        """Each callback to one instance and, at once, its retry to the next one."""
        numbers = iter(range(STUDENTS))

        async def poster() -> None:
            for n in numbers:
                callback = await self.contact_added(n)
                await asyncio.gather(
                    self.cluster.post(http, callback, n),
                    self.cluster.post(http, callback, n + 1),
                )

        await asyncio.gather(*(poster() for _ in range(4)))

    async def joins(self, http: httpx.AsyncClient) -> None:
        """Students joining JOIN_GROUPS robot groups, a second apart, round robin."""
        turn = 0
        for wave in range(JOINS_PER_GROUP):
            for n in range(JOIN_GROUPS):
                member = student(wave * JOIN_GROUPS + n)
                joined = await self.fake.post(
                    f"/sandbox/customer-groups/{chat(n)}/join", json={"members": [member]}
                )
                change = MemberChange(**joined.raise_for_status().json())
                now = datetime.now(UTC)
                plaintext = callback_xml.chat_members_changed(
                    CORP_ID, change, detail="add_member", scene=3, at=now
                )
                await self.cluster.post(http, self.builder.post(plaintext, at=now), turn)
                turn += 1
            await asyncio.sleep(1.0)


# --------------------------------------------------------------------------- reading results


async def outbox(sessions: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with sessions() as session:
        return list((await session.execute(select(OutboxMessage))).scalars())


def _prefixed(rows: list[OutboxMessage], prefix: str) -> list[OutboxMessage]:
    return [row for row in rows if row.key.startswith(prefix)]


def busiest_minute(times: list[datetime]) -> int:
    times = sorted(times)
    return max(
        (sum(1 for t in times[i:] if t - start < ROBOT_WINDOW) for i, start in enumerate(times)),
        default=0,
    )


@dataclass
class Expectation:
    push_schedule: int
    achievement: int  # the 喜报's rows are keyed xibao:{achievement}:{group}

    def progress(self, rows: list[OutboxMessage]) -> str:
        parts = {
            "welcomes": [r for r in rows if r.channel == "welcome"],
            "pushes": _prefixed(rows, f"schedule:{self.push_schedule}:"),
            "xibao": _prefixed(rows, f"xibao:{self.achievement}:"),
            "join batches": _prefixed(rows, "group_welcome:"),
        }
        return "; ".join(
            f"{name} {dict(Counter(r.status for r in found))}" for name, found in parts.items()
        )

    def settled(self, rows: list[OutboxMessage]) -> bool:
        welcomes = [r for r in rows if r.channel == "welcome"]
        pushes = _prefixed(rows, f"schedule:{self.push_schedule}:")
        xibao = _prefixed(rows, f"xibao:{self.achievement}:")
        joins = _prefixed(rows, "group_welcome:")
        final = all(r.status in ("sent", "dead") for r in welcomes + pushes + xibao + joins)
        return final and (len(welcomes), len(pushes), len(xibao), len(joins)) == (
            STUDENTS,
            PUSH_TARGETS,
            GROUPS,
            JOIN_GROUPS,
        )


def lateness(rows: list[OutboxMessage], due: datetime) -> str:
    """Each push's lateness: due → its outbox row, due → sent (WeCom's answer)."""
    lines = []
    for row in sorted(rows, key=lambda r: r.target):
        to_row = (row.created_at - due).total_seconds()
        sent = row.sent_at or row.updated_at
        lines.append(
            f"  to robot {row.target}: "
            f"due → outbox row {to_row:+.2f} s, due → WeCom {(sent - due).total_seconds():+.2f} s"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- the test


async def test_three_instances_keep_every_guarantee_through_a_leader_kill(
    tmp_path: Path, pg_url: str
) -> None:
    sandbox = SandboxServer.start(tmp_path, robots=[robot(n) for n in range(ROBOTS)])
    env = campbot_env(database_url=pg_url, api_base=sandbox.base_url)
    env.update(WECOM_TOKEN=TOKEN, WECOM_ENCODING_AES_KEY=AES_KEY, ADMIN_TOKEN=ADMIN)
    report: list[str] = []
    try:
        async with (
            database(pg_url) as sessions,
            sandbox.client() as fake,
            httpx.AsyncClient(trust_env=False, timeout=30) as http,
        ):
            cohort_id, star = await seed(sessions)
            await prepare_sandbox(fake)
            async with cluster(tmp_path, env) as nodes:
                await run_scenarios(nodes, sessions, fake, http, (cohort_id, star), report)
    finally:
        sandbox.stop()
        print("\n" + "\n".join(report))  # noqa: T201 - the figures the issue asks for


async def run_scenarios(
    nodes: Cluster,
    sessions: async_sessionmaker[AsyncSession],
    fake: httpx.AsyncClient,
    http: httpx.AsyncClient,
    seeded: tuple[int, int],
    report: list[str],
) -> None:
    cohort_id, star = seeded
    wecom = WeCom(fake, nodes)
    storm = asyncio.create_task(wecom.welcome_storm(http))
    joins = asyncio.create_task(wecom.joins(http))
    async with sessions() as session:
        group_ids = list(
            (await session.execute(select(Group.id).where(Group.channel == "robot"))).scalars()
        )
    achievement = await nodes.admin(
        http,
        "/achievements",
        {"member_id": star, "title": "出单啦", "detail": "第三天出单", "group_ids": group_ids},
    )
    await asyncio.gather(storm, joins)
    # Planned through one instance (round robin), fired by whichever leads then.
    due = (datetime.now(UTC) + timedelta(seconds=AT_DUE_IN_S)).replace(microsecond=0)
    schedule = await nodes.admin(
        http,
        "/schedules",
        {
            "script_key": "live_soon",
            "cohort_id": cohort_id,
            "trigger": {"type": "at", "at": due.isoformat()},
            "target": {"type": "cohort_groups"},
        },
    )

    # The leader dies just before the push is due; another must take over and send it.
    [(leader_pid, _)] = nodes.leader_log()
    await asyncio.sleep(max((due - datetime.now(UTC)).total_seconds() - KILL_BEFORE_DUE_S, 0))
    [leader] = [s for s in nodes.servers if s.process.pid == leader_pid]
    killed_at = datetime.now(UTC)
    leader.process.kill()

    async def someone_else_leads() -> bool:
        return len(nodes.leader_log()) >= 2

    await wait_until(someone_else_leads, what="a new scheduler leader", within=FAILOVER_S + 5)
    failover = (nodes.leader_log()[1][1] - killed_at).total_seconds()
    report.append(f"scheduler leader pid {leader_pid} killed; a new leader after {failover:.2f} s")

    expected = Expectation(schedule["id"], achievement["id"])

    async def settled() -> bool:
        return expected.settled(await outbox(sessions))

    try:
        await wait_until(settled, what="every message settled", within=SETTLE_S)
    except AssertionError as exc:
        raise AssertionError(f"{expected.progress(await outbox(sessions))}\n{exc}") from None
    finally:
        rows = await outbox(sessions)
        delivered = await deliveries(fake)
        pushes = _prefixed(rows, f"schedule:{schedule['id']}:")
        report.append(
            f"the `at` push, due {due:%H:%M:%S} (to WeCom: at the robot's next free 3.06 s "
            f"slot; the 喜报 took the first ones):\n{lateness(pushes, due)}"
        )
    await check(rows, delivered, fake, sessions, wecom, failover, report)


async def check(
    rows: list[OutboxMessage],
    delivered: list[dict[str, Any]],
    fake: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    wecom: WeCom,
    failover: float,
    report: list[str],
) -> None:
    summary = "\n".join(report)
    assert failover < FAILOVER_S, summary
    # Every welcome once, with the student's own code, though each callback reached two
    # instances.
    welcomes = [d for d in delivered if d["channel"] == "welcome"]
    assert Counter(d["target"] for d in welcomes) == Counter(set(wecom.codes))
    assert {d["target"]: d["body"]["welcome_code"] for d in welcomes} == wecom.codes
    async with sessions() as session:
        kinds = Counter((await session.execute(select(InboxEvent.kind))).scalars())
    assert kinds["event.change_external_contact"] == STUDENTS
    assert kinds["event.change_external_chat"] == JOIN_GROUPS * JOINS_PER_GROUP
    # Every robot group its 喜报, its push and its join batch: the robots got exactly the
    # rows sent, plus at most the repeats counted in_doubt (on the wire at the kill).
    robot_rows = [r for r in rows if r.channel == "robot"]
    assert {r.status for r in robot_rows} == {"sent"}, summary
    robot_deliveries = [d for d in delivered if d["channel"] == "webhook"]
    in_doubt = sum(r.in_doubt for r in robot_rows)
    assert len(robot_rows) <= len(robot_deliveries) <= len(robot_rows) + in_doubt, summary
    assert len(robot_rows) == GROUPS + ROBOTS + JOIN_GROUPS
    per_robot: dict[str, list[datetime]] = defaultdict(list)
    for d in robot_deliveries:
        per_robot[d["target"]].append(datetime.fromisoformat(d["at"]))
    assert max(busiest_minute(times) for times in per_robot.values()) <= ROBOT_LIMIT
    # Slots are reserved 3.06 s apart when rows are claimed (by any instance); a send's own
    # delay moves its arrival a little, which the rolling minute above allows for.
    gaps = [b - a for t in per_robot.values() for a, b in itertools.pairwise(sorted(t))]
    calls = (await fake.get("/sandbox/calls", params={"path": WEBHOOK})).json()["calls"]
    limited = [c for c in calls if (c.get("response") or {}).get("errcode") == 45009]
    assert not limited, summary
    # One customer-group welcome template, though three instances synced at start.
    adds = await fake.get(
        "/sandbox/calls", params={"path": "/cgi-bin/externalcontact/group_welcome_template/add"}
    )
    assert len(adds.json()["calls"]) == 1
    report.append(
        f"robot sends: {len(robot_deliveries)} for {len(robot_rows)} rows ({in_doubt} in "
        f"doubt); busiest robot minute: {max(busiest_minute(t) for t in per_robot.values())}; "
        f"closest two sends to one robot: {min(gaps).total_seconds():.2f} s"
    )
