"""Which cgi the sandbox serves, how each is authorised, and what its answers carry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from app.wecom_sandbox import (
    endpoints_auth,
    endpoints_contact,
    endpoints_groupchat,
    endpoints_groupmsg,
    endpoints_jsapi,
    endpoints_media,
    endpoints_message,
    endpoints_webhook,
)
from app.wecom_sandbox.records import FileBody, Json
from app.wecom_sandbox.request import ApiRequest
from app.wecom_sandbox.state import SandboxState

# A handler answers JSON, or a file (media/get).
Handler = Callable[[SandboxState, ApiRequest], Json | FileBody]
# none: gettoken; token: any app's access_token; contact: an app allowed 客户联系; key: robots.
Auth = Literal["none", "token", "contact", "key"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    handler: Handler
    auth: Auth = "token"
    ok_errmsg: str = "ok"
    # Fields qyapi still sends, empty, with an error (a live 84061 carried "follow_user":[]).
    error_fields: Json | None = None


_CONTACT = "/cgi-bin/externalcontact/"
_TEMPLATE = _CONTACT + "group_welcome_template/"

ENDPOINTS: dict[str, Endpoint] = {
    "/cgi-bin/gettoken": Endpoint(endpoints_auth.gettoken, "none"),
    "/cgi-bin/get_jsapi_ticket": Endpoint(endpoints_jsapi.get_jsapi_ticket),
    "/cgi-bin/ticket/get": Endpoint(endpoints_jsapi.ticket_get),
    "/cgi-bin/auth/getuserinfo": Endpoint(endpoints_jsapi.getuserinfo),
    "/cgi-bin/message/send": Endpoint(endpoints_message.message_send),
    "/cgi-bin/appchat/send": Endpoint(endpoints_message.appchat_send),
    "/cgi-bin/webhook/send": Endpoint(endpoints_webhook.webhook_send, "key"),
    "/cgi-bin/webhook/upload_media": Endpoint(endpoints_webhook.webhook_upload_media, "key"),
    # The documented sample answers media/upload with errmsg "".
    "/cgi-bin/media/upload": Endpoint(endpoints_media.media_upload, ok_errmsg=""),
    "/cgi-bin/media/uploadimg": Endpoint(endpoints_media.media_uploadimg),
    "/cgi-bin/media/get": Endpoint(endpoints_media.media_get),
    _CONTACT + "get": Endpoint(
        endpoints_contact.externalcontact_get, "contact", error_fields={"follow_user": []}
    ),
    _CONTACT + "send_welcome_msg": Endpoint(endpoints_contact.send_welcome_msg, "contact"),
    _CONTACT + "mark_tag": Endpoint(endpoints_contact.mark_tag, "contact"),
    _CONTACT + "get_corp_tag_list": Endpoint(endpoints_contact.get_corp_tag_list, "contact"),
    _CONTACT + "add_msg_template": Endpoint(endpoints_groupmsg.add_msg_template, "contact"),
    _CONTACT + "get_groupmsg_send_result": Endpoint(
        endpoints_groupmsg.get_groupmsg_send_result, "contact"
    ),
    _CONTACT + "remind_groupmsg_send": Endpoint(
        endpoints_groupmsg.remind_groupmsg_send, "contact"
    ),
    _CONTACT + "groupchat/get": Endpoint(endpoints_groupchat.groupchat_get, "contact"),
    _CONTACT + "groupchat/list": Endpoint(endpoints_groupchat.groupchat_list, "contact"),
    _TEMPLATE + "add": Endpoint(endpoints_groupchat.welcome_template_add, "contact"),
    _TEMPLATE + "edit": Endpoint(endpoints_groupchat.welcome_template_edit, "contact"),
    _TEMPLATE + "get": Endpoint(endpoints_groupchat.welcome_template_get, "contact"),
    _TEMPLATE + "del": Endpoint(endpoints_groupchat.welcome_template_del, "contact"),
}
