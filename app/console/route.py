"""The console route class: who is signed in, the CSRF check, one transaction, the answer.

Every console page is a `ConsoleRoute` (declare it on `console_router`). Its handler:
1. finds the viewer from the session cookie (`app.console.sessions`); without one, a page
   redirects (303) to the sign-in page, an htmx request gets 401 with `HX-Redirect`;
2. refuses (403) any request that may change something — every method but GET/HEAD — whose
   CSRF token (the `csrf_token` form field or the `X-CSRF-Token` header htmx sends) is
   missing or not the session's;
3. runs the page in one session, committed only if the answer is < 400 (a refused form
   leaves nothing half-saved), and turns the services' errors into a Chinese error page
   with their status (403, 404, 409, 422) — never a 500 for bad input;
4. adds the console's security headers and `Server-Timing: app;dur=…, cpu;dur=…` (the
   server time and the process CPU time of the request, read by `bench/console.py`).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.errors import AdminError
from app.api.admin.errors import field_problems
from app.console.forms import Refused
from app.console.models import Role
from app.console.sessions import COOKIE, Viewer, signing_key, viewer_for
from app.console.templating import console_of, error_page
from app.deps import get_runtime
from app.errors import CampBotError

logger = logging.getLogger(__name__)

LOGIN_PATH = "/console/login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD"})
# A console form is a few fields of text: the body and the field count are bounded so that
# parsing a posted form cannot cost the event loop much. A page that needs more says so on
# its route (`max_body_size=`, `form_limits={"max_fields": n}`). The body holds one field
# of Starlette's 1 MiB part limit and the rest. Big text goes as multipart (the pack's text
# on the import's confirm step): percent-decoding a large urlencoded field costs the loop
# ~70 ms a MiB, and Chinese text triples when percent-encoded.
BODY_MAX = 1024 * 1024 + 64 * 1024
FORM_LIMITS = {"max_fields": 300}
_SESSION, _VIEWER = "console_session", "console_viewer"
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    # No inline script at all: htmx and the console's own script are files of this origin.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
}


class Forbidden(CampBotError):
    """The viewer's role or cohorts do not cover this page (403)."""

    status_code = 403

    def __init__(self, message: str = "没有权限查看这个页面。") -> None:
        super().__init__(message)
        self.message = message


def viewer_of(request: Request) -> Viewer:
    viewer = getattr(request.state, _VIEWER, None)
    if not isinstance(viewer, Viewer):
        raise Forbidden("控制台配置错误：该页面未经登录检查。")
    return viewer


def session_of(request: Request) -> AsyncSession:
    session: AsyncSession = getattr(request.state, _SESSION)
    return session


ViewerDep = Annotated[Viewer, Depends(viewer_of)]
ConsoleSessionDep = Annotated[AsyncSession, Depends(session_of)]


def requires(role: Role) -> Callable[[Request], None]:
    def check(request: Request) -> None:
        if not viewer_of(request).at_least(role):
            raise Forbidden("你的账号没有权限打开这个页面。")

    return check


# A page that asks for more than its router's role: `@router.post(..., dependencies=OPERATOR)`.
OPERATOR = [Depends(requires(Role.OPERATOR))]


def require_cohort(viewer: Viewer, cohort_id: int | None) -> None:
    """Forbidden unless the viewer works in this cohort (an assistant) or sees them all."""
    if not viewer.sees(cohort_id):
        raise Forbidden("这不是你负责的期次。")


def console_router(
    prefix: str, *, role: Role = Role.OPERATOR, max_body_size: int = BODY_MAX
) -> APIRouter:
    """The router a capability declares its console pages on: under /console, every route
    a ConsoleRoute that needs at least `role` (a page may ask for more), its body at most
    `max_body_size` bytes (413 past it)."""
    return APIRouter(
        prefix="/console" + prefix,
        route_class=ConsoleRoute,
        dependencies=[Depends(requires(role))],
        include_in_schema=False,
        max_body_size=max_body_size,
    )


def to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    location = f"{LOGIN_PATH}?next={quote(target, safe='/')}"
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


async def _csrf_ok(request: Request, viewer: Viewer, limits: Mapping[str, Any]) -> bool:
    presented = request.headers.get(CSRF_HEADER)
    if presented is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            # The form read here is the one the page gets (Starlette keeps it): same limits.
            value = (await request.form(**limits)).get(CSRF_FIELD)
            presented = value if isinstance(value, str) else None
    return presented is not None and hmac.compare_digest(
        presented.encode(), viewer.csrf_token.encode()
    )


async def _run(
    request: Request,
    handler: Callable[[Request], Coroutine[Any, Any, Response]],
    limits: Mapping[str, Any],
) -> Response:
    runtime = get_runtime(request)
    async with runtime.sessions() as session:
        now = runtime.clock.now()
        key = await signing_key(session=session, cache=console_of(request).keys, now=now)
        viewer = await viewer_for(
            session=session, cookie=request.cookies.get(COOKIE), key=key, now=now
        )
        # Ends the sign-in check's transaction (a key made just now, a session touched): the
        # page's work starts on a fresh one and holds no connection while it does not query
        # (SQLite has one: a page hashing a password or checking a pack would hold /healthz).
        await session.commit()
        if viewer is None:
            return to_login(request)
        setattr(request.state, _VIEWER, viewer)
        if request.method not in SAFE_METHODS and not await _csrf_ok(request, viewer, limits):
            await session.rollback()
            return error_page(
                request, 403, "页面已过期或来源不明（CSRF 校验失败），请刷新后重试。"
            )
        setattr(request.state, _SESSION, session)
        try:
            response = await handler(request)
        except Exception as exc:  # cancellation passes; closing the session rolls back
            await session.rollback()
            return _as_page(request, exc)
        if response.status_code < 400:
            await session.commit()
        else:
            await session.rollback()
        return response


def _as_page(request: Request, exc: Exception) -> Response:
    if isinstance(exc, RequestValidationError):
        problems = field_problems(exc.errors())
        text = "；".join(f"{p.field}：{p.message}" for p in problems)
        return error_page(request, 422, f"请求参数不合法：{text}")
    if isinstance(exc, Refused):
        return error_page(request, exc.status, "；".join(exc.problems.values()))
    if isinstance(exc, AdminError | Forbidden):
        return error_page(request, exc.status_code, exc.message)
    if isinstance(exc, IntegrityError):
        logger.info("console write refused by a constraint: %s", exc.orig)
        return error_page(request, 409, "与已有数据冲突（可能有人同时修改了它），请刷新后重试。")
    if isinstance(exc, DataError):
        return error_page(request, 422, "数据库拒绝了这个值（超出范围或格式不对）。")
    raise exc


class ConsoleRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        options["form_limits"] = {**FORM_LIMITS, **(options.get("form_limits") or {})}
        super().__init__(path, endpoint, **options)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            started, cpu = time.perf_counter(), time.process_time()
            try:
                response = await _run(request, handler, self.form_limits)
            finally:
                await request.close()  # an uploaded form's temporary files
            for name, value in HEADERS.items():
                response.headers.setdefault(name, value)
            took = (time.perf_counter() - started) * 1000
            used = (time.process_time() - cpu) * 1000
            response.headers["Server-Timing"] = f"app;dur={took:.1f}, cpu;dur={used:.1f}"
            return response

        return console_handler
