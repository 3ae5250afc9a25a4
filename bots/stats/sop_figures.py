"""The stats' SOP figure: 群SOP completion per staff member (on time, late, skipped), from
the SOP capability's service."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bots.sop import service as sop_service
from bots.stats import service


class SopCompletionOut(BaseModel):
    staff_userid: str
    on_time: int = Field(description="在期次的超时时间内发出")
    late: int = Field(description="超时后才发出")
    skipped: int
    open: int = Field(description="已提醒、还没发")
    on_time_rate: float = Field(description="按时 ÷（按时 + 迟发 + 跳过），无完成时为 0")


def sop_out(figures: list[sop_service.StaffCompletion]) -> list[SopCompletionOut]:
    return [
        SopCompletionOut(
            staff_userid=f.staff_userid,
            on_time=f.on_time,
            late=f.late,
            skipped=f.skipped,
            open=f.open,
            on_time_rate=service.rate(f.on_time, f.on_time + f.late + f.skipped),
        )
        for f in figures
    ]
