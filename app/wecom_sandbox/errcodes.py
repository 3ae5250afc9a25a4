"""The errcodes the sandbox answers, worded as qyapi words them, and the error handlers raise.

Codes and meanings come from the official list (path/90313, mirrored in go-workwx
`errcodes/mod.go`). `seen_live` marks an errmsg copied from a real qyapi response quoted
in public code, tests or issues; the others are our English for the documented meaning
(the Chinese name follows in the comment), so clients must key on errcode, as with WeCom.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MORE_INFO = "more info at https://open.work.weixin.qq.com/devtool/query?e={code}"


@dataclass(frozen=True, slots=True)
class ErrText:
    text: str
    seen_live: bool


ERRCODES: dict[int, ErrText] = {
    -1: ErrText("system busy", False),  # 系统繁忙
    40001: ErrText("invalid credential", True),
    40004: ErrText("invalid media type", False),  # 不合法的媒体文件类型
    40005: ErrText("invalid file type", False),  # 不合法的type参数
    40006: ErrText("invalid file size", False),  # 不合法的文件大小
    40007: ErrText("invalid media_id", True),
    40008: ErrText("invalid message type", True),
    40009: ErrText("invalid image size", False),  # 上传图片大小不是有效值
    40011: ErrText("invalid video size", False),  # 上传视频大小不是有效值
    40013: ErrText("invalid corpid", True),
    40014: ErrText("invalid access_token", True),
    40056: ErrText("invalid agentid", True),
    40029: ErrText("invalid code", True),
    40058: ErrText("invalid Request Parameter", True),
    40068: ErrText("invalid tagid", True),
    40096: ErrText("invalid external userid", True),
    41001: ErrText("access_token missing", True),
    41002: ErrText("corpid missing", False),  # 缺少corpid参数
    41004: ErrText("corpsecret missing", True),
    41006: ErrText("media_id missing", True),
    41009: ErrText("missing userid", False),  # 缺少userid参数
    41010: ErrText("missing url", False),  # 缺少url参数
    41011: ErrText("missing agentid", False),  # 缺少agentid参数
    41016: ErrText("missing title", False),  # 缺少title参数
    41033: ErrText("missing description", False),  # 缺少 description 参数
    41035: ErrText("missing external userid", False),  # 缺少外部联系人userid参数
    41046: ErrText("missing msgid", False),  # 缺少企业群发消息id
    41047: ErrText("invalid msgid", False),  # 无效的企业群发消息id
    41048: ErrText("no customer to send", False),  # 无可发送的客户
    41049: ErrText("missing welcome code", False),  # 缺少欢迎语code参数
    41050: ErrText("invalid welcome code", False),  # 无效的欢迎语code (20 s)
    41051: ErrText("customer and user has started chat", False),  # 客户和服务人员已经开始聊天了
    41055: ErrText("group welcome template count reach limit", False),  # 群欢迎语模板数量达到上限
    41064: ErrText("attachments count reach limit", False),  # 附件数量超过限制
    41065: ErrText("invalid attachment type", False),  # 无效的附件类型
    41094: ErrText("remind groupmsg freq out of limit", False),  # 群发提醒超过频率限制
    42001: ErrText("access_token expired", True),
    44001: ErrText("empty media data", True),
    44004: ErrText("empty content", True),
    45001: ErrText("media size out of limit", False),  # 多媒体文件大小超过限制
    45002: ErrText("content size out of limit", False),  # WeChat MP's words for this code
    45008: ErrText("article size out of limit", False),  # 图文消息的文章数量不符合系统限制
    45009: ErrText("api freq out of limit", True),
    45033: ErrText("api concurrent out of limit", False),  # 接口并发调用超过限制
    48002: ErrText("api forbidden", False),  # API接口无权限调用
    50001: ErrText("redirect_url not authorized", False),  # redirect_url未登记可信域名
    50100: ErrText("invalid cursor", False),  # 分页查询的游标无效
    60020: ErrText("not allow to access from your ip", False),  # 不安全的访问IP
    81013: ErrText("user & party & tag all invalid", True),
    82001: ErrText("All touser & toparty & totag invalid", False),  # 指定的成员/部门/标签全部为空
    84061: ErrText("not external contact", True),
    86003: ErrText("chatid not exists", False),  # 参数 chatid 不存在
    86201: ErrText("missing chatid", False),  # 参数 需要chatid
    86214: ErrText("invalid chat_type", False),  # 群发类型不合法
    90501: ErrText("not customer group chat", False),  # 该群不是客户群
    93000: ErrText("invalid webhook url", True),
    301002: ErrText("not allow operate another agent with this accesstoken.", True),
    301019: ErrText("media md5 not match", True),
}
# Live sources: 40001/40013/41001/41004/40014 from a public probe of qyapi with fake values
# (2026-09-11) and SDK test logs; 42001 go-workwx user logs; 93000/45009/44004/40008 webhook SDK
# tests (lazywebhook, go wx bot tests); 40058 "<field> exceed max length N. invalid Request
# Parameter" from alertmanager bridges; 84061/40096 WxJava test logs; 81013/40056/301002/40068
# from user logs; 301019 lenye/pmsg#2; 41006 funcodingdev/n8n-nodes-wecom#16.


class WeComError(Exception):
    """A business failure: HTTP 200 with this errcode, as every qyapi failure looks."""

    def __init__(
        self,
        errcode: int,
        detail: str = "",
        *,
        errmsg: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(errcode, detail or errmsg)
        self.errcode = errcode
        # Some errmsgs lead with the field at fault ("text.content exceed max length 2048.").
        self.detail = detail
        self.errmsg = errmsg
        # Fields WeCom still sends with this error (invaliduser on 81013, ...).
        self.extra = dict(extra or {})


def errmsg_for(errcode: int, detail: str = "", *, hint: str, ip: str) -> str:
    """The errmsg with WeCom's hint suffix; clients must never parse it."""
    known = ERRCODES.get(errcode)
    text = known.text if known else "sandbox injected error"
    lead = f"{detail} {text}" if detail else text
    return f"{lead}, hint: [{hint}], from ip: {ip}, {MORE_INFO.format(code=errcode)}"
