"""The demo's 群SOP part: staff posting from the chat toolbar, and the routing's summary
(how many 群发 tasks the camp cost, how many items staff posted)."""

from __future__ import annotations

from sqlalchemy import func, select

from app.channels.routing import CHANNEL_NAMES
from app.cli.demo_camp import ASSISTANT, STAFF, Demo
from app.models import OutboxMessage

DETAILED_DAY = 3  # the day the story shows the assistant's taps in detail
SHOWN = 2  # …and how many of them


async def staff_at_work(demo: Demo, day: int) -> None:
    """The staff open the chat toolbar and post what is due (the assistant skips day 5's tip:
    that day's live lesson ran long and the group did not need it)."""
    for userid in (ASSISTANT, STAFF):
        desk = await demo.desk(userid)
        for item in await desk.due():
            if day == 5 and item["title"] == "每日干货":
                await desk.skip(item)
                demo.report.skipped += 1
                continue
            await desk.post(demo.state, item)
            demo.report.posted[userid] += 1
            shown = demo.report.shown_posts
            if day == DETAILED_DAY and item["chat_kind"] == "group" and shown < SHOWN:
                demo.report.shown_posts += 1
                first = item["text"].splitlines()[0] if item["text"] else ""
                demo.say(
                    f"  {ASSISTANT} 在客户群打开聊天工具栏，点「发送」：「{item['title']}」"
                    f"（{first[:24]}…）→ 记为已发送"
                )


async def routing_summary(demo: Demo) -> None:
    async with demo.runtime.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.channel, func.count()).group_by(OutboxMessage.channel)
        )
        counts = dict(rows.all())
    report = demo.report
    report.mass_tasks = {c: int(counts.get(c, 0)) for c in ("customer_group", "customer_single")}
    report.sop_items = int(counts.get("staff", 0))
    demo.say(
        f"群发任务（员工要在群发助手确认的）：共 {sum(report.mass_tasks.values())} 个——"
        f"客户群 {report.mass_tasks['customer_group']} 个（开营、喜报、每周小结、结营），"
        f"私发学员 {report.mass_tasks['customer_single']} 个（打卡提醒：每位员工每晚合并成一个）；"
        f"喜报发到客户群用的是{CHANNEL_NAMES.get(str(report.xibao_channel), '（未发）')}。"
    )
    demo.say(
        f"群SOP：共 {report.sop_items} 条，员工在聊天工具栏发出 "
        + "、".join(f"{u} {n} 条" for u, n in sorted(report.posted.items()))
        + f"，跳过 {report.skipped} 条。"
    )
