"""What the sidebar's routes share: the route class that turns refusals into answers, the
signed-in staff member, and whether the development harness may be served."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from app.admin.errors import Conflict, InvalidInput, NotFound
from app.deps import get_runtime
from bots.sop import sessions
from bots.sop.visibility import Hidden

NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class NotSignedIn(Exception):
    """No valid sidebar session: sign in through WeCom first."""


def _json(status: int, detail: object) -> Response:
    return JSONResponse({"detail": detail}, status_code=status, headers=NO_STORE)


class SidebarRoute(APIRoute):
    """401 without a session, 403 for another staff member's group or student, 404, 409 and
    422 with a Chinese reason — never a 500 for what a client sent."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except NotSignedIn:
                return _json(401, "请在企业微信里打开侧边栏（登录已过期）。")
            except Hidden:
                return _json(403, "这不是你负责的群或学员。")
            except NotFound as exc:
                return _json(404, str(exc))
            except Conflict as exc:
                return _json(409, str(exc))
            except InvalidInput as exc:
                return _json(422, [{"field": p.field, "message": p.message} for p in exc.problems])

        return guarded


async def current_staff(request: Request) -> sessions.Staff:
    runtime = get_runtime(request)
    now = runtime.clock.now()
    key = await sessions.key_of(runtime.sessions, now)
    staff = sessions.verify(key, request.cookies.get(sessions.COOKIE), now)
    if staff is None:
        raise NotSignedIn
    return staff


def harness_allowed(request: Request) -> bool:
    """The fake `ww` is served on the built-in sandbox (no WECOM_* setting), or to tests that
    ask for it; with real WeCom settings it does not exist (404)."""
    state = request.app.state
    return getattr(state, "sandbox", None) is not None or bool(
        getattr(state, "sidebar_harness", False)
    )


StaffDep = Annotated[sessions.Staff, Depends(current_staff)]
