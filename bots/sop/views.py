"""The sidebar API's JSON: items, a group's card, a student's card."""

from __future__ import annotations

from dataclasses import asdict

from bots.sop.cards import GroupCard, StudentCard
from bots.sop.service import Item


def item_json(item: Item) -> dict[str, object]:
    message = item.message
    return {
        "id": item.id,
        "chat": item.chat,
        "chat_kind": item.chat_kind,
        "title": item.title,
        "due_at": item.due_at.isoformat(),
        "status": item.status,
        "overdue": item.overdue,  # the server's rule: the page never keeps its own threshold
        "msgtype": message.msgtype,
        "text": message.content,
        "has_image": item.has_image,
        "articles": [
            {"title": a.title, "url": a.url, "desc": a.description, "imgUrl": a.picurl}
            for a in message.articles
        ],
        "done_at": item.done_at.isoformat() if item.done_at else None,
        "done_by": item.done_by,
    }


def card_json(card: GroupCard) -> dict[str, object]:
    return {
        "chat_id": card.chat_id,
        "name": card.name,
        "cohort": card.cohort_name,
        "camp_day": card.camp_day,
        "items": [item_json(i) for i in card.items],
        "timetable": [asdict(slot) for slot in card.timetable],
        "checkins": {
            "members": card.members,
            "checked_in": card.checked_in,
            "missing": card.missing,
        },
    }


def student_json(card: StudentCard, reminder: str | None) -> dict[str, object]:
    member = card.member
    base = f"/sidebar/api/students/{member.external_userid}/images"
    return {
        "external_userid": member.external_userid,
        "name": member.name or "同学",
        "cohort": card.cohort_name,
        "camp_day": card.camp_day,
        "streak": card.streak,
        "points": card.points,
        "rank": card.rank,
        "cohort_size": card.cohort_size,
        "recent": [
            {
                **asdict(work),
                "images": [f"{base}/{work.id}/{n}" for n in range(work.images)],
            }
            for work in card.recent
        ],
        "tags": card.tags,
        "xibao": card.xibao,
        "items": [item_json(i) for i in card.items],
        "h5_url": card.h5_url,
        "reminder": reminder,
    }
