"""/sandbox/...: inspect and drive a running sandbox from outside (demos, operators)."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from app.clock import ManualClock
from app.wecom_sandbox.request import parse_json
from app.wecom_sandbox.state import SandboxState


class BadInput(ValueError):
    pass


def jsonable(value: Any) -> Any:
    """Records as JSON: dataclasses to objects, datetimes to ISO 8601."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    data = parse_json(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise BadInput("body must be a JSON object")
    return data


def _get(data: dict[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    """Field `name` of type `kind`; required unless a default (None allowed) is given."""
    value = data.get(name, default)
    if value is ...:
        raise BadInput(f"{name} is required")
    if value is default:
        return value
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadInput(f"{name} must be {kind.__name__}")
    return value


def _seconds(data: dict[str, Any]) -> float:
    value = data.get("seconds")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput("seconds must be a number")
    return float(value)


async def bad_input(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def not_found(_request: Request, exc: Exception) -> JSONResponse:
    # str(KeyError) quotes its message; the message itself reads better.
    return JSONResponse({"error": str(exc.args[0]) if exc.args else ""}, status_code=404)


class Introspection:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    async def calls(self, request: Request) -> JSONResponse:
        path = request.query_params.get("path")
        calls = self.state.calls_to(path) if path else self.state.calls
        return JSONResponse({"calls": jsonable(calls)})

    async def messages(self, _request: Request) -> JSONResponse:
        return JSONResponse(
            {"sent": self.state.sent_messages(), "deliveries": jsonable(self.state.deliveries)}
        )

    async def summary(self, _request: Request) -> JSONResponse:
        s = self.state
        return JSONResponse(
            {
                "corp_id": s.corp_id,
                "now": s.clock.now().isoformat(),
                "agentids": sorted(s.apps),
                "users": s.users,
                "robots": sorted(s.robots),
                "appchats": s.appchats,
                "customer_groups": jsonable(s.customer_groups),
                "external_contacts": jsonable(s.external_contacts),
                "tag_groups": jsonable(s.tag_groups),
                "tags": jsonable(s.tags),
                "group_msgs": jsonable(s.group_msgs),
                "welcome_templates": jsonable(s.welcome_templates),
            }
        )

    async def add_user(self, request: Request) -> JSONResponse:
        data = await _body(request)
        self.state.add_user(_get(data, "userid", str), _get(data, "name", str, None))
        return JSONResponse({"ok": True})

    async def add_robot(self, request: Request) -> JSONResponse:
        self.state.add_robot(_get(await _body(request), "key", str))
        return JSONResponse({"ok": True})

    async def remove_robot(self, request: Request) -> JSONResponse:
        self.state.remove_robot(request.path_params["key"])
        return JSONResponse({"ok": True})

    async def add_appchat(self, request: Request) -> JSONResponse:
        data = await _body(request)
        self.state.add_appchat(_get(data, "chatid", str), _get(data, "members", list))
        return JSONResponse({"ok": True})

    async def add_customer_group(self, request: Request) -> JSONResponse:
        data = await _body(request)
        group = self.state.add_customer_group(
            _get(data, "chat_id", str),
            _get(data, "owner", str),
            _get(data, "members", list, []),
            name=_get(data, "name", str, ""),
            notice=_get(data, "notice", str, ""),
        )
        return JSONResponse(jsonable(group))

    async def join_group(self, request: Request) -> JSONResponse:
        data = await _body(request)
        change = self.state.join_customer_group(
            request.path_params["chat_id"],
            _get(data, "members", list),
            join_scene=_get(data, "join_scene", int, 3),
        )
        return JSONResponse(jsonable(change))

    async def leave_group(self, request: Request) -> JSONResponse:
        data = await _body(request)
        change = self.state.leave_customer_group(
            request.path_params["chat_id"], _get(data, "members", list)
        )
        return JSONResponse(jsonable(change))

    async def add_external_contact(self, request: Request) -> JSONResponse:
        data = await _body(request)
        contact = self.state.add_external_contact(
            _get(data, "external_userid", str),
            _get(data, "name", str),
            _get(data, "follow_userid", str),
            _get(data, "state", str, ""),
        )
        return JSONResponse(jsonable(contact))

    async def add_corp_tag(self, request: Request) -> JSONResponse:
        data = await _body(request)
        tag_id = self.state.add_corp_tag(
            _get(data, "group_name", str), _get(data, "tag_name", str)
        )
        return JSONResponse({"tag_id": tag_id})

    async def issue_welcome_code(self, request: Request) -> JSONResponse:
        data = await _body(request)
        code = self.state.issue_welcome_code(
            _get(data, "userid", str), _get(data, "external_userid", str)
        )
        return JSONResponse({"welcome_code": code})

    async def confirm(self, request: Request) -> JSONResponse:
        data = await _body(request)
        confirmed = self.state.confirm_msg_template(
            request.path_params["msgid"], _get(data, "target", str, None)
        )
        return JSONResponse({"settled": jsonable(confirmed)})

    async def fail_next(self, request: Request) -> JSONResponse:
        data = await _body(request)
        self.state.fail_next(
            _get(data, "path", str),
            _get(data, "errcode", int),
            _get(data, "times", int, 1),
            _get(data, "errmsg", str, None),
        )
        return JSONResponse({"ok": True})

    async def fail_forever(self, request: Request) -> JSONResponse:
        data = await _body(request)
        self.state.fail_forever(
            _get(data, "path", str), _get(data, "errcode", int), _get(data, "errmsg", str, None)
        )
        return JSONResponse({"ok": True})

    async def delay(self, request: Request) -> JSONResponse:
        data = await _body(request)
        self.state.delay(_get(data, "path", str), _seconds(data))
        return JSONResponse({"ok": True})

    async def accept_then_drop(self, request: Request) -> JSONResponse:
        data = await _body(request)
        self.state.accept_then_drop(_get(data, "path", str), _get(data, "times", int, 1))
        return JSONResponse({"ok": True})

    async def respond_5xx(self, request: Request) -> JSONResponse:
        data = await _body(request)
        self.state.respond_5xx(
            _get(data, "path", str), _get(data, "times", int, 1), _get(data, "status", int, 502)
        )
        return JSONResponse({"ok": True})

    async def clear_failures(self, _request: Request) -> JSONResponse:
        self.state.clear_failures()
        return JSONResponse({"ok": True})

    async def invalidate_tokens(self, _request: Request) -> JSONResponse:
        self.state.invalidate_tokens()
        return JSONResponse({"ok": True})

    async def advance_clock(self, request: Request) -> JSONResponse:
        clock = self.state.clock
        if not isinstance(clock, ManualClock):
            return JSONResponse({"error": "the sandbox runs on the system clock"}, 409)
        clock.advance(timedelta(seconds=_seconds(await _body(request))))
        return JSONResponse({"now": clock.now().isoformat()})

    def routes(self) -> list[BaseRoute]:
        post = ["POST"]
        return [
            Route("/calls", self.calls),
            Route("/messages", self.messages),
            Route("/state", self.summary),
            Route("/users", self.add_user, methods=post),
            Route("/robots", self.add_robot, methods=post),
            Route("/robots/{key}", self.remove_robot, methods=["DELETE"]),
            Route("/appchats", self.add_appchat, methods=post),
            Route("/customer-groups", self.add_customer_group, methods=post),
            Route("/customer-groups/{chat_id}/join", self.join_group, methods=post),
            Route("/customer-groups/{chat_id}/leave", self.leave_group, methods=post),
            Route("/external-contacts", self.add_external_contact, methods=post),
            Route("/corp-tags", self.add_corp_tag, methods=post),
            Route("/welcome-codes", self.issue_welcome_code, methods=post),
            Route("/confirm/{msgid}", self.confirm, methods=post),
            Route("/fail-next", self.fail_next, methods=post),
            Route("/fail-forever", self.fail_forever, methods=post),
            Route("/delay", self.delay, methods=post),
            Route("/accept-then-drop", self.accept_then_drop, methods=post),
            Route("/respond-5xx", self.respond_5xx, methods=post),
            Route("/clear-failures", self.clear_failures, methods=post),
            Route("/invalidate-tokens", self.invalidate_tokens, methods=post),
            Route("/advance-clock", self.advance_clock, methods=post),
        ]
