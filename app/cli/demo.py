"""`campbot sandbox demo`: a compressed 7-day camp played against the built-in WeCom sandbox.

Everything goes through the same doors as in production: WeCom's side is the sandbox
(signed, encrypted callbacks into /wecom/callback; what CampBot sends lands in its
record), operators use the admin API, students use their personal H5 pages. Only time
is compressed: a ManualClock jumps from one moment of the camp to the next, and the
scheduler and the sender are run at each moment instead of by their loops.

The camp ends today, so the database it leaves behind (`campbot-demo.db` by default)
can be served afterwards and browsed: H5 pages, admin API, stats.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import or_, select

from app.cli.demo_camp import (
    ADMIN_TOKEN,
    ASSISTANT,
    CAMP_DAYS,
    CHANNEL_STATE,
    CUSTOMER_CHAT,
    INTERNAL_STUDENT,
    QUESTION,
    ROBOT_KEY,
    STAFF,
    STUDENTS,
    TZ,
    Demo,
    DemoError,
    DemoReport,
    png,
    running,
    token_of,
)
from app.cli.demo_sop import routing_summary, staff_at_work
from app.models import Member, OutboxMessage
from bots.group_welcome.template_sync import sync_templates
from scripts_library.loader import seed_default_pack


async def _set_up(demo: Demo) -> None:
    async with demo.runtime.sessions.begin() as session:
        await seed_default_pack(session=session, now=demo.clock.now())
    cohort = await demo.admin(
        "POST",
        "/cohorts",
        json={
            "name": "1 期",
            "camp": "跨境电商 7 天实战营",
            "start_date": demo.start.isoformat(),
            "days": CAMP_DAYS,
            "channel_state": CHANNEL_STATE,
        },
    )
    demo.cohort_id = cohort["id"]
    for group in (
        {"name": "1 期 学习群（机器人）", "channel": "robot", "robot_key": ROBOT_KEY},
        {
            "name": "1 期 学员群",
            "channel": "customer",
            "chat_id": CUSTOMER_CHAT,
            "owner_userid": STAFF,
            "assistant_userid": ASSISTANT,
        },
    ):
        await demo.admin("POST", "/groups", json={"cohort_id": demo.cohort_id, **group})
    planned = await _schedules_from_pack(demo)
    await demo.admin(
        "POST",
        "/qa-rules",
        json={
            "patterns": ["回放"],
            "mode": "contains",
            "reply": "直播回放在你的专属学习页「今日任务」下面，下课后 2 小时内上传，随时可以看。",
            "priority": 10,
            "cohort_id": demo.cohort_id,
        },
    )
    demo.say(
        f"开营前一晚：建好「跨境电商 7 天实战营·1 期」（{demo.start} 开营，{CAMP_DAYS} 天），"
        f"两个群（机器人群；客户群，群主{STAFF}、助教{ASSISTANT}），"
        f"按内容包排好 {planned} 条定时推送，"
        "一条问答规则。客户群每月能收的群发有限：只有开营、喜报、每周小结、结营用群发，"
        "日常节奏走群SOP——到点提醒助教，助教在聊天工具栏一键发送。"
    )


async def _schedules_from_pack(demo: Demo) -> int:
    """One schedule per script whose pack entry states a timed schedule (day N HH:MM)."""
    scripts = await demo.admin("GET", "/scripts", params={"limit": 200})
    planned = 0
    for script in scripts["items"]:
        hint = script.get("schedule_hint") or {}
        if hint.get("type") not in ("cohort_day", "member_day", "cron"):
            continue  # event-driven ones (the welcome, the group welcome) need no schedule
        trigger = {k: hint[k] for k in ("type", "day", "time", "cron") if k in hint}
        body = {"script_key": script["key"], "cohort_id": demo.cohort_id, "trigger": trigger}
        body["target"] = hint.get("target") or {"type": "cohort_groups"}
        await demo.admin("POST", "/schedules", json=body)
        planned += 1
    return planned


async def _students_arrive(demo: Demo) -> None:
    before = len(demo.state.delivered("welcome"))
    for external, (name, _) in STUDENTS.items():
        sent = await demo.wecom.add_external_contact(
            external, userid=STAFF, name=name, state=CHANNEL_STATE
        )
        if sent.response.status_code != 200:
            raise DemoError(f"callback for {name} answered {sent.response.status_code}")
        await demo.settle()
    demo.report.welcomed = len(demo.state.delivered("welcome")) - before
    demo.say(
        f"{len(STUDENTS)} 位学员扫码添加了{STAFF}（渠道 {CHANNEL_STATE}）："
        f"{demo.report.welcomed} 条欢迎语在 20 秒窗口内发出，每条带专属学习页链接。"
    )
    changed = await sync_templates(
        sessions=demo.runtime.sessions, wecom=demo.wecom_client, clock=demo.clock
    )
    await demo.wecom.chat_members_joined(CUSTOMER_CHAT, list(STUDENTS))
    await demo.group_joins()
    await demo.settle()
    templates = len(demo.state.welcome_templates)
    demo.say(
        f"客户群的入群欢迎语（企业微信模板）已按话术 group_welcome 同步：{changed} 条更新，"
        f"企业微信里共 {templates} 条；新人入群由企业微信自动发出。"
    )
    userid, name = INTERNAL_STUDENT
    await demo.admin(
        "POST", "/members", json={"userid": userid, "name": name, "cohort_id": demo.cohort_id}
    )
    members = await demo.admin("GET", "/members", params={"cohort_id": demo.cohort_id})
    for item in members["items"]:
        demo.report.h5_urls[item.get("name") or str(item["id"])] = item["h5_url"]
    demo.say(f"他们进了客户群；内部学员{name}由运营在后台加入本期（在企业微信里用应用打卡）。")


# --------------------------------------------------------------------------- the camp's days

STEP = timedelta(minutes=5)  # within the schedules' 10-minute misfire grace


async def _check_in_on_h5(demo: Demo, name: str, day: int) -> None:
    token = token_of(demo.report.h5_urls[name])
    page = await demo.client.get(f"/h5/m/{token}")
    if page.status_code != 200:
        raise DemoError(f"{name} 的学习页打不开：{page.status_code}")
    kinds = ("checkin", "homework") if day % 2 == 0 else ("checkin",)
    for kind in kinds:
        response = await demo.client.post(
            f"/h5/m/{token}/checkin",
            data={
                "text": f"第 {day} 天{'作业' if kind == 'homework' else '打卡'}：已完成",
                "kind": kind,
            },
            files=[("images", (f"day{day}.png", png(day), "image/png"))],
            headers={"Accept": "application/json"},
        )
        if response.status_code >= 400:
            raise DemoError(
                f"{name} 第 {day} 天{kind}提交失败：{response.status_code} {response.text}"
            )
    demo.report.checkins += 1


async def _internal_student(demo: Demo, day: int) -> None:
    userid, _ = INTERNAL_STUDENT
    if day != 4:
        await demo.wecom.text_from_member(userid, f"打卡 第 {day} 课学完了")
        await demo.settle()
        demo.report.checkins += 1
    if day == 2:
        before = len(demo.state.delivered("message"))
        sent = await demo.wecom.text_from_member(userid, QUESTION)
        await demo.settle()
        # Answered in the callback's own HTTP answer when fast enough, else by app message.
        passive = sent.passive_reply is not None
        answered = len(demo.state.delivered("message")) - before + passive
        demo.report.questions_answered += answered
        how = "（被动回复，随回调一起返回）" if passive else "（应用消息）"
        demo.say(f"  {INTERNAL_STUDENT[1]}在应用里问「{QUESTION}」→ 自动回复 {answered} 条{how}")
    await demo.settle()


LATE_NOTICE = "📢 临时通知：今晚直播改到 20:30 开始。"


async def _operator_evening(demo: Demo) -> None:
    """Day 2, 20:00: an assistant reviews 小林's homework, and an operator edits tomorrow's
    task list over the admin API — no deploy; the next morning's push says the new text."""
    homework = await demo.admin(
        "GET",
        "/checkins",
        params={"cohort_id": demo.cohort_id, "day": 2, "kind": "homework", "reviewed": "false"},
    )
    mine = next(item for item in homework["items"] if item.get("member_name") == "小林")
    await demo.admin(
        "POST",
        f"/checkins/{mine['id']}/review",
        json={"score": 95, "comment": "思路清晰，继续保持！"},
    )
    script = await demo.admin("GET", "/scripts/day3_todolist")
    await demo.admin(
        "PUT",
        "/scripts/day3_todolist",
        json={
            "title": script["title"],
            "msgtype": script["msgtype"],
            "category": script["category"],
            "body": script["body"].rstrip() + "\n\n" + LATE_NOTICE + "\n",
            "note": "直播时间调整",
        },
    )
    await demo.settle()
    demo.say(
        f"  助教给小林第 2 天的作业打了 95 分并点评（点评已发给小林，学习页上也看得到）；"
        f"运营在后台改了第 3 天的任务话术，加了一句「{LATE_NOTICE}」"
    )


async def _xibao(demo: Demo) -> None:
    members = await demo.admin("GET", "/members", params={"cohort_id": demo.cohort_id})
    xiaolin = next(m for m in members["items"] if m.get("name") == "小林")
    created = await demo.admin(
        "POST",
        "/achievements",
        json={
            "member_id": xiaolin["id"],
            "title": "第一单出单啦",
            "detail": "开营第 5 天拿下第一笔订单",
        },
    )
    demo.report.xibao_broadcast = created["broadcast_id"]
    await demo.settle()
    progress = await demo.admin("GET", f"/broadcasts/{created['broadcast_id']}")
    customer = [g for g in progress["groups"] if g["group_name"] == "1 期 学员群"]
    demo.report.xibao_channel = customer[0]["channel"] if customer else None
    demo.say(
        f"  小林出单了！运营录入喜报 → 发往本期每个群：共 {progress['total']}，"
        f"已发 {progress['sent']}，待群主确认 {progress['awaiting_confirmation']}，"
        f"失败 {progress['failed']}"
    )


async def _play_day(demo: Demo, day: int) -> None:
    before = Counter(d.channel for d in demo.state.deliveries)
    demo.at(day, "07:00")
    end = demo.clock.now() + timedelta(hours=16)
    while demo.clock.now() <= end:
        local = demo.clock.now().astimezone(TZ).strftime("%H:%M")
        if local == "12:30" and day >= 1:
            for name, days in STUDENTS.values():
                if day in days:
                    await _check_in_on_h5(demo, name, day)
        if local == "13:00" and day >= 1:
            await _internal_student(demo, day)
        if local == "18:00" and day == 5:
            await _xibao(demo)
        if local == "20:00" and day == 2:
            await _operator_evening(demo)
        await demo.fire()
        await staff_at_work(demo, day)
        demo.clock.advance(STEP)
    sent = Counter(d.channel for d in demo.state.deliveries) - before
    checked = [name for name, days in STUDENTS.values() if day in days] if day >= 1 else []
    reminded = await _reminded(demo, day)
    demo.report.reminded[day] = reminded
    demo.say(
        f"第 {day} 天：企业微信收到 {sum(sent.values())} 条（"
        + "，".join(f"{k} {v}" for k, v in sorted(sent.items()))
        + f"）；在学习页打卡：{'、'.join(checked) or '无'}；"
        + f"21:00 督学提醒：{'、'.join(sorted(reminded)) or '无'}"
    )


async def _reminded(demo: Demo, day: int) -> set[str]:
    """Who the day's check-in reminder reached: personally (`checkin_reminder:{member}:…`) or
    in their staff member's one merged 群发 (its `external_userids`)."""
    date = (demo.start + timedelta(days=day)).isoformat()
    async with demo.runtime.sessions() as session:
        rows = (
            await session.execute(
                select(OutboxMessage.key, OutboxMessage.payload).where(
                    OutboxMessage.key.like(f"checkin_reminder:%:{date}")
                )
            )
        ).all()
        ids = {int(part) for key, _ in rows if (part := key.split(":")[1]).isdigit()}
        merged = {str(e) for _, p in rows for e in p.get("external_userids") or []}  # type: ignore[attr-defined]
        names = await session.scalars(
            select(Member.name).where(or_(Member.id.in_(ids), Member.external_userid.in_(merged)))
        )
        return {name or "同学" for name in names}


async def _wrap_up(demo: Demo) -> None:
    for msgid in list(demo.state.group_msgs):
        demo.state.confirm_msg_template(msgid)  # the owner taps 发送 in 群发助手
    await routing_summary(demo)
    stats = await demo.admin("GET", f"/stats/cohorts/{demo.cohort_id}")
    demo.report.sop_figures = stats.get("sop", [])
    demo.say(
        "群SOP 完成情况（统计接口）："
        + "；".join(
            f"{f['staff_userid']} 按时 {f['on_time']}、迟发 {f['late']}、跳过 {f['skipped']}"
            for f in demo.report.sop_figures
        )
    )
    demo.report.stats_days = stats["days"]
    demo.report.deliveries = Counter(d.channel for d in demo.state.deliveries)
    demo.say("每日打卡率（统计接口）：")
    for row in stats["days"]:
        if row.get("members"):
            demo.say(
                f"  第 {row['day']} 天  {row['checked_in']}/{row['members']} 人  "
                f"打卡率 {row['checkin_rate']:.0%}  作业率 {row['homework_rate']:.0%}"
            )
    demo.say(
        "企业微信一共收到："
        + "，".join(f"{k} {v}" for k, v in sorted(demo.report.deliveries.items()))
    )


async def run_demo(
    *, database_url: str, out: Callable[[str], None], record: Path | None = None
) -> DemoReport:
    """Play the camp; `record` gets the sandbox's record of what WeCom received (JSON)."""
    async with running(database_url, out) as demo:
        await _set_up(demo)
        await demo.console_account()
        await _students_arrive(demo)
        for day in range(CAMP_DAYS + 1):
            await _play_day(demo, day)
        await _wrap_up(demo)
        if record is not None:
            deliveries = [
                {"channel": d.channel, "target": d.target, "at": d.at.isoformat(), "body": d.body}
                for d in demo.state.deliveries
            ]
            text = json.dumps(deliveries, ensure_ascii=False, indent=1)
            await asyncio.to_thread(record.write_text, text, "utf-8")
        return demo.report


def demo_command(
    database: Annotated[
        Path, typer.Option(help="SQLite file the demo camp is written to (replaced)")
    ] = Path("campbot-demo.db"),
    record: Annotated[
        Path, typer.Option(help="where to write what WeCom would have received")
    ] = Path("campbot-demo-wecom.json"),
) -> None:
    """Play a compressed 7-day camp against the sandbox, printing what happens."""
    database.unlink(missing_ok=True)
    url = f"sqlite+aiosqlite:///{database}"
    typer.echo(f"演示：一期 7 天的训练营，企业微信由内置沙箱扮演；数据写入 {database}\n")
    try:
        report = asyncio.run(run_demo(database_url=url, out=typer.echo, record=record))
    except DemoError as exc:
        typer.echo(f"演示中断：{exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(where_to_look(report, url, record))


def where_to_look(report: DemoReport, url: str, record: Path) -> str:
    """The demo's last lines: how to serve what it left and where to look, ending with the
    console's address and the operator's login."""
    name, h5 = next(iter(report.h5_urls.items()), ("", ""))
    user, password = report.console_login
    return (
        "\n去哪里看：\n"
        f"  启动服务：DATABASE_URL={url} ADMIN_TOKEN={ADMIN_TOKEN} ./run serve\n"
        f"  学员学习页（{name}）：{h5}\n"
        f"  管理接口：curl -H 'Authorization: Bearer {ADMIN_TOKEN}' "
        "http://localhost:8000/admin/api/stats/cohorts/1\n"
        f"  喜报进度：/admin/api/broadcasts/{report.xibao_broadcast}；接口文档：/docs\n"
        f"  企业微信收到的每条消息：{record}\n"
        f"  运营后台：http://localhost:8000/ 账号 {user}，密码 {password}"
    )
