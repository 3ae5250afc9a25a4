"""Rendering the personal H5 page (Jinja2, autoescaped: everything a student or operator
typed is text, never markup). No JS framework, no external asset: one inline stylesheet and
a few lines of script (image previews) allowed by a per-response nonce."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined

from app.api.h5.route_class import PRIVATE_HEADERS
from app.api.h5.uploads import MAX_IMAGE_MB, MAX_IMAGES, MAX_TEXT_CHARS
from app.storage import is_key
from bots.checkin.models import EntryStatus
from bots.qa.service import FaqEntry
from bots.student_page.service import StudentPage
from bots.xibao.service import TITLE_MAX

_env = Environment(
    loader=PackageLoader("bots.student_page", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    # Compiled once per process: the templates ship with the code, so no file check (a
    # stat per render) is needed to see an edit; a deploy restarts the process anyway.
    auto_reload=False,
)
FAQ_QUERY_MAX = 200
# Tighter than the model's column allows: a phone form, and the 喜报 card has to stay short.
REPORT_DETAIL_MAX = 500
LIMITS = {
    "images": MAX_IMAGES,
    "mb": MAX_IMAGE_MB,
    "text": MAX_TEXT_CHARS,
    "query": FAQ_QUERY_MAX,
    "title": TITLE_MAX,
    "detail": REPORT_DETAIL_MAX,
}
STATUS_LABELS = {
    EntryStatus.ON_TIME: "已打卡",
    EntryStatus.MAKEUP: "补卡",
    EntryStatus.LEAVE: "请假",
}
# `?ok=` values the POST redirects with; fixed texts, so nothing typed is ever reflected.
FLASHES = {
    "checkin": "打卡成功！",
    "checkin-updated": "打卡已更新",
    "makeup": "补卡成功",
    "homework": "作业已提交",
    "homework-updated": "作业已更新",
    "leave": "已请假，连续打卡不会中断",
    "achievement": "已提交，助教审核后会在群里发喜报",
}
FAQ_NONE = "没有找到答案，可以直接问助教"
# An image an entry references by WeCom's PicUrl or `wecom-media:` id (app check-ins before
# images were downloaded): the page serves stored keys only, and its CSP loads nothing else.
ELSEWHERE_LABEL = "图片在企业微信里"


@dataclass(frozen=True, slots=True)
class Faq:
    """The FAQ section: what was searched (empty: nothing yet) and what answered it."""

    query: str = ""
    entries: tuple[FaqEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class ReportDraft:
    """A refused 喜报 report, shown again in its (opened) form."""

    title: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Phase:
    running: bool
    label: str  # 第 N 天 / 开营日 / 未开营 / 已结营
    note: str  # what the page says instead of the forms when not running


def phase(page: StudentPage, *, start_date: date, today: date) -> Phase:
    day = page.camp_day.day
    if day is not None:
        return Phase(True, "开营日" if day == 0 else f"第 {day} 天", "")
    # Before the day boundary of the first day the camp day is still None: not started.
    if today <= start_date:
        return Phase(False, "未开营", f"训练营 {start_date:%m 月 %d 日} 开营，到时再来打卡吧。")
    return Phase(False, "已结营", "训练营已结营，感谢一路坚持！")


def page_headers(nonce: str) -> dict[str, str]:
    policy = (
        "default-src 'none'; img-src 'self' blob:; style-src 'unsafe-inline'; "
        f"script-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )
    return {**PRIVATE_HEADERS, "Content-Security-Policy": policy}


def new_nonce() -> str:
    return secrets.token_urlsafe(12)


def render_page(
    page: StudentPage,
    *,
    token: str,
    tz: ZoneInfo,
    phase: Phase,
    image_url: Callable[[str], str],
    nonce: str,
    flash: str | None = None,
    error: str | None = None,
    draft_kind: str | None = None,
    draft_text: str = "",
    faq: Faq | None = None,
    report: ReportDraft | None = None,
) -> str:
    def local_time(moment: datetime) -> str:
        return moment.astimezone(tz).strftime("%m-%d %H:%M")

    return _env.get_template("h5_page.html").render(
        page=page,
        checkin=page.checkin,
        homework=page.homework,
        running=phase.running,
        day_label=phase.label,
        idle_note=phase.note,
        greeting="今天也要加油！" if phase.running else "你好！",
        history=sorted(page.history.items()),
        status_labels=STATUS_LABELS,
        post_url=f"/h5/m/{token}/checkin",
        image_url=image_url,
        stored=is_key,
        elsewhere_label=ELSEWHERE_LABEL,
        local_time=local_time,
        limits=LIMITS,
        nonce=nonce,
        flash=flash,
        error=error,
        draft_kind=draft_kind,
        draft_text=draft_text,
        faq=faq or Faq(),
        faq_url=f"/h5/m/{token}/faq",
        faq_none=FAQ_NONE,
        report=report,
        report_url=f"/h5/m/{token}/achievements",
    )


def render_message(title: str, message: str) -> str:
    return _env.get_template("h5_message.html").render(title=title, message=message)
