"""One request in, one answer out: recording, fault injection, authorisation, errors.

Transport-free, so the ASGI app and the httpx.MockTransport share it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from app.wecom_sandbox.endpoints import ENDPOINTS, Auth, Endpoint
from app.wecom_sandbox.errcodes import WeComError, errmsg_for
from app.wecom_sandbox.records import FileBody, Json, RecordedCall, UploadedFile
from app.wecom_sandbox.request import ApiRequest, parse_json
from app.wecom_sandbox.state import SandboxState


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    payload: Json | None  # None: an empty body (unknown path, gateway 5xx)
    delay: float = 0.0
    lost: bool = False  # processed, but the response never reaches the client
    file: FileBody | None = None  # a file answer (media/get) instead of `payload`


def _record(state: SandboxState, req: ApiRequest) -> RecordedCall:
    files = [
        UploadedFile(
            p.name,
            p.filename,
            p.content_type,
            len(p.data),
            hashlib.md5(p.data, usedforsecurity=False).hexdigest(),
        )
        for p in req.files()
    ]
    call = RecordedCall(
        method=req.method,
        path=req.path,
        query=dict(req.query),
        json=None if files else parse_json(req.body) if req.body.strip() else None,
        files=files or None,
        at=state.clock.now(),
    )
    state.calls.append(call)
    return call


def _hint(state: SandboxState) -> str:
    millis = int(state.clock.now().timestamp() * 1000)
    return f"{millis}{len(state.calls):012d}"


def _error(state: SandboxState, req: ApiRequest, endpoint: Endpoint, exc: WeComError) -> Json:
    errmsg = exc.errmsg
    if errmsg is None:
        errmsg = errmsg_for(exc.errcode, exc.detail, hint=_hint(state), ip=req.client_ip)
    return {"errcode": exc.errcode, "errmsg": errmsg, **(endpoint.error_fields or {}), **exc.extra}


def _authorise(state: SandboxState, req: ApiRequest, auth: Auth) -> None:
    if auth not in ("token", "contact"):
        return
    # Only the query string counts: a token in a header or the body reads as missing (41001).
    req.agentid = state.check_token(req.query.get("access_token", ""))
    if auth == "contact" and state.contact_apps is not None:
        if req.agentid not in state.contact_apps:
            raise WeComError(48002)


def _run(state: SandboxState, req: ApiRequest, endpoint: Endpoint) -> Json | FileBody:
    try:
        _authorise(state, req, endpoint.auth)
        result = endpoint.handler(state, req)
    except WeComError as exc:
        return _error(state, req, endpoint, exc)
    if isinstance(result, FileBody) or req.path in state.success_without_errcode:
        return result
    return {"errcode": 0, "errmsg": endpoint.ok_errmsg, **result}


def handle(state: SandboxState, req: ApiRequest) -> Answer:
    call = _record(state, req)
    endpoint = ENDPOINTS.get(req.path)
    if endpoint is None:
        # Probed on qyapi: an unknown cgi is HTTP 404 with an empty body, not an errcode.
        call.status, call.outcome = 404, "unknown_path"
        return Answer(404, None)
    delay = state.faults.delay_for(req.path)
    status = state.faults.take_server_error(req.path)
    if status is not None:
        call.status, call.outcome = status, "server_error"
        return Answer(status, None, delay)
    rule = state.faults.take_failure(req.path)
    if rule is not None:
        injected = WeComError(rule.errcode, errmsg=rule.errmsg)
        call.response, call.outcome = _error(state, req, endpoint, injected), "injected"
        return Answer(200, call.response, delay)
    result = _run(state, req, endpoint)
    # A file answer records no JSON (the call's `errcode` is None, as for any non-JSON body).
    file = result if isinstance(result, FileBody) else None
    call.response = None if isinstance(result, FileBody) else result
    if state.faults.take_drop(req.path):
        call.outcome = "dropped"
        return Answer(200, call.response, delay, lost=True, file=file)
    return Answer(200, call.response, delay, file=file)
