"""GET /cgi-bin/gettoken: corpid + an app's secret → that app's access_token."""

from __future__ import annotations

from app.wecom_sandbox.errcodes import WeComError
from app.wecom_sandbox.records import Json
from app.wecom_sandbox.request import ApiRequest
from app.wecom_sandbox.state import SandboxState


def gettoken(state: SandboxState, req: ApiRequest) -> Json:
    corpid = req.query.get("corpid", "")
    secret = req.query.get("corpsecret", "")
    # Probed on qyapi: a missing secret is reported before a missing or wrong corpid.
    if not secret:
        raise WeComError(41004)
    if not corpid:
        raise WeComError(41002)
    if corpid != state.corp_id:
        raise WeComError(40013)
    agentid = next((aid for aid, app_secret in state.apps.items() if app_secret == secret), None)
    if agentid is None:
        raise WeComError(40001)
    token = state.issue_token(agentid)
    return {"access_token": token.value, "expires_in": state.token_lifetime}
