"""Errors from calling WeCom, by what the caller should do about them.

    WeComError (app.errors.CampBotError)
    ├── UndeliverableError       CampBot refuses to send it (content over a limit, no route)
    ├── WeComTransportError      timeout, connection error, HTTP 5xx — retryable; the request
    │                            may or may not have reached WeCom
    └── WeComAPIError            WeCom answered errcode != 0 — permanent unless a subclass says so
        ├── TokenError               40001/40014/42001 even after one refresh + retry — retryable
        ├── GetTokenError            gettoken itself refused (wrong corp id or secret) — permanent
        ├── SystemBusyError          -1 after the client's own bounded retries — retryable
        └── RateLimitedError         45009/45033 — retryable, not before `retry_after` seconds

`retryable` and `retry_after` are what the outbox reads; `hint` is the Chinese
explanation shown to operators (CLI, admin API).
"""

from __future__ import annotations

from app.errors import CampBotError

TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
SYSTEM_BUSY = -1
RATE_LIMIT_WAIT_S = {45009: 60.0, 45033: 10.0}
# WeCom refuses the repeat of a send that took effect: 41051, the welcome code was used.
# After an attempt whose outcome is unknown, that proves the attempt arrived.
ALREADY_DONE_ERRCODES = frozenset({41051})

HINTS: dict[int, str] = {
    -1: "企业微信系统繁忙，稍后会自动重试。",
    40001: "应用 Secret 不正确或已重置：请检查 WECOM_SECRET。",
    40013: "企业 ID 不正确：请检查 WECOM_CORP_ID。",
    40014: "access_token 无效，已自动刷新仍失败：请检查 WECOM_SECRET 与应用是否匹配。",
    40029: "登录码（code）无效、已用过或已过期（5 分钟）：请重新打开页面。",
    40056: "AgentId 不正确：请检查 WECOM_AGENT_ID。",
    40058: "请求参数不合法：请检查发送的内容和目标。",
    40096: "外部联系人 userid 不合法。",
    41004: "缺少应用 Secret：请设置 WECOM_SECRET。",
    41050: "欢迎语 code 已失效（须在添加好友后 20 秒内使用）。",
    41051: "客户和成员已经开始聊天，欢迎语无需再发。",
    42001: "access_token 已过期，已自动刷新仍失败。",
    44004: "消息内容为空。",
    45002: "消息内容超过长度限制，请缩短后再发。",
    45009: "调用频率超过限制（如群机器人每分钟 20 条），稍后会自动重试。",
    45033: "接口并发调用超过限制，稍后会自动重试。",
    48002: "应用没有该接口权限：请在管理后台把应用加入「客户联系 可调用接口的应用」。",
    50001: "网页授权的回调域名不是应用的可信域名：请在应用的「网页授权及JS-SDK」里设置可信域名。",
    60011: "应用可见范围不包含该成员或部门。",
    60020: "服务器 IP 不在应用的企业可信 IP 中：请在管理后台配置可信 IP。",
    81013: "接收人全部无效或不在应用可见范围内。",
    84061: "该客户与成员不存在好友关系。",
    90501: "该群不是客户群。",
    93000: "群机器人 webhook 地址无效，或机器人已被移出群：请在群里重新添加机器人并更新 key。",
    93004: "群机器人已被停用。",
}


class WeComError(CampBotError):
    retryable = False
    retry_after: float | None = None

    @property
    def hint(self) -> str:
        return "请检查网络和企业微信接口地址（WECOM_API_BASE），稍后会自动重试。"


class WeComTransportError(WeComError):
    retryable = True


class WeComAPIError(WeComError):
    def __init__(self, errcode: int, errmsg: str, *, path: str = "") -> None:
        super().__init__(f"{path} errcode {errcode}: {errmsg}" if path else f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path

    @property
    def hint(self) -> str:
        return HINTS.get(self.errcode, f"企业微信返回错误 {self.errcode}：{self.errmsg}")

    @property
    def confirms_earlier_send(self) -> bool:
        """True when this refusal means the same send already took effect: on a repeat of
        an attempt that may have arrived, it did (on a first attempt it is a refusal)."""
        return self.errcode in ALREADY_DONE_ERRCODES


class TokenError(WeComAPIError):
    retryable = True


class GetTokenError(WeComAPIError):
    pass


class SystemBusyError(WeComAPIError):
    retryable = True


class RateLimitedError(WeComAPIError):
    retryable = True

    def __init__(self, errcode: int, errmsg: str, *, path: str = "") -> None:
        super().__init__(errcode, errmsg, path=path)
        self.retry_after = RATE_LIMIT_WAIT_S.get(errcode, 60.0)


def api_error(errcode: int, errmsg: str, *, path: str) -> WeComAPIError:
    """The right subclass for a non-zero errcode."""
    if errcode in TOKEN_ERRCODES:
        return TokenError(errcode, errmsg, path=path)
    if errcode == SYSTEM_BUSY:
        return SystemBusyError(errcode, errmsg, path=path)
    if errcode in RATE_LIMIT_WAIT_S:
        return RateLimitedError(errcode, errmsg, path=path)
    return WeComAPIError(errcode, errmsg, path=path)


class UndeliverableError(WeComError):
    """CampBot itself cannot send this (bad payload, content over a limit, no route):
    permanent, and the message says what to fix, in Chinese."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def hint(self) -> str:
        return self.message
