"""The sandbox corp: what it holds, what it was asked, and the knobs tests turn.

Plain Python, no HTTP: `server.create_sandbox_app(state)` serves it. Time comes from
the injected clock, so expiry and rate windows move only when a test moves them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from app.clock import Clock, SystemClock
from app.wecom_sandbox import quota
from app.wecom_sandbox.errcodes import WeComError
from app.wecom_sandbox.faults import Faults, cgi_path
from app.wecom_sandbox.jsapi_state import JsapiState
from app.wecom_sandbox.records import (
    CorpTag,
    CustomerGroup,
    Delivery,
    ExternalContact,
    FollowUser,
    GroupMember,
    GroupMsgTarget,
    GroupMsgTask,
    IssuedToken,
    Json,
    Media,
    MemberChange,
    RecordedCall,
    TagGroup,
    WelcomeCode,
    WelcomeTemplate,
    new_version,
)
from app.wecom_sandbox.windows import SlidingWindow

SEND_PATHS = frozenset(
    {
        "/cgi-bin/message/send",
        "/cgi-bin/appchat/send",
        "/cgi-bin/webhook/send",
        "/cgi-bin/externalcontact/send_welcome_msg",
        "/cgi-bin/externalcontact/add_msg_template",
    }
)
GETTOKEN = "/cgi-bin/gettoken"
WELCOME_CODE_TTL = timedelta(seconds=20)
MEDIA_TTL = timedelta(days=3)


def new_id(prefix: str, nbytes: int = 18) -> str:
    return prefix + secrets.token_urlsafe(nbytes).replace("-", "x").replace("_", "y")


class SandboxState:
    """One WeCom corp with its apps, directory, customer contacts and robots."""

    def __init__(
        self,
        *,
        corp_id: str,
        apps: Mapping[int, str],
        clock: Clock | None = None,
        token_lifetime: int = 7200,
        expired_errcode: int = 42001,
        contact_apps: Iterable[int] | None = None,
    ) -> None:
        self.corp_id = corp_id
        self.apps = dict(apps)  # agentid → secret
        self.clock: Clock = clock or SystemClock()
        self.token_lifetime = token_lifetime
        # WeCom now often answers 40014 for an expired token too; tests pick.
        self.expired_errcode = expired_errcode
        # Apps listed in 「客户联系 - 可调用接口的应用」; None: all of them.
        self.contact_apps = None if contact_apps is None else set(contact_apps)
        self.tokens: dict[str, IssuedToken] = {}
        self.calls: list[RecordedCall] = []
        self.deliveries: list[Delivery] = []
        self.faults = Faults()
        self.success_without_errcode: set[str] = set()
        self.users: dict[str, str] = {}  # corp members: userid → name
        self.robots: set[str] = set()
        self.appchats: dict[str, list[str]] = {}
        self.customer_groups: dict[str, CustomerGroup] = {}
        self.external_contacts: dict[str, ExternalContact] = {}
        self.tag_groups: dict[str, TagGroup] = {}
        self.tags: dict[str, CorpTag] = {}
        self.welcome_codes: dict[str, WelcomeCode] = {}
        self.media: dict[str, Media] = {}
        self.group_msgs: dict[str, GroupMsgTask] = {}
        self.welcome_templates: dict[str, WelcomeTemplate] = {}
        # path/90236: per app and member 30/min, 1000/hour; the excess is silently dropped.
        self.member_minute = SlidingWindow(30, timedelta(minutes=1))
        self.member_hour = SlidingWindow(1000, timedelta(hours=1))
        # path/91770: 20 messages a minute per robot.
        self.robot_minute = SlidingWindow(20, timedelta(minutes=1))
        # 群发助手's receive rule: month_days (WeCom's default), week_7 or day_1.
        self.msg_template_quota_mode = "month_days"
        # A test's own limit per window instead of the mode's (None: the mode's).
        self.msg_template_monthly_quota: int | None = None
        # enable_duplicate_check: when each (app, content, recipients) was last delivered.
        self.delivered_at: dict[str, datetime] = {}
        self.jsapi = JsapiState()  # JS-SDK tickets and web OAuth (the staff sidebar)

    # --- tokens -------------------------------------------------------------------------

    def issue_token(self, agentid: int) -> IssuedToken:
        now = self.clock.now()
        token = IssuedToken(
            value=secrets.token_urlsafe(96),
            agentid=agentid,
            issued_at=now,
            expires_at=now + timedelta(seconds=self.token_lifetime),
        )
        self.tokens[token.value] = token
        return token

    def invalidate_tokens(self) -> None:
        """WeCom may revoke tokens early; business calls then answer 40014."""
        for token in self.tokens.values():
            token.revoked = True

    def check_token(self, value: str) -> int:
        """The agentid behind a live token, or the errcode WeCom answers."""
        if not value:
            raise WeComError(41001)
        token = self.tokens.get(value)
        if token is None or token.revoked:
            raise WeComError(40014)
        if self.clock.now() >= token.expires_at:
            raise WeComError(self.expired_errcode)
        return token.agentid

    @property
    def gettoken_count(self) -> int:
        return len(self.calls_to(GETTOKEN))

    # --- assertions ---------------------------------------------------------------------

    def calls_to(self, path: str) -> list[RecordedCall]:
        wanted = cgi_path(path)
        return [call for call in self.calls if call.path == wanted]

    def sent_messages(self) -> list[Json]:
        """Bodies of every send WeCom accepted (errcode 0), in order; delivered or not."""
        return [
            call.json
            for call in self.calls
            if call.path in SEND_PATHS and call.errcode == 0 and isinstance(call.json, dict)
        ]

    def delivered(self, channel: str | None = None) -> list[Delivery]:
        return [
            d
            for d in self.deliveries
            if d.status == "delivered" and (channel is None or d.channel == channel)
        ]

    def answer_success_without_errcode(self, path: str = GETTOKEN) -> None:
        """Leave errcode/errmsg out of successes, as some real answers do (wechatpy fixtures)."""
        self.success_without_errcode.add(cgi_path(path))

    # --- directory ----------------------------------------------------------------------

    def add_user(self, userid: str, name: str | None = None) -> None:
        self.users.setdefault(userid, name or userid)

    def add_robot(self, key: str) -> None:
        self.robots.add(key)

    def remove_robot(self, key: str) -> None:
        """The robot was removed from its group: its key now answers 93000."""
        self.robots.discard(key)

    def add_appchat(self, chatid: str, members: Iterable[str]) -> None:
        member_list = list(members)
        for userid in member_list:
            self.add_user(userid)
        self.appchats[chatid] = member_list

    def add_customer_group(
        self,
        chat_id: str,
        owner: str,
        members: Iterable[str] = (),
        *,
        name: str = "",
        notice: str = "",
    ) -> CustomerGroup:
        self.add_user(owner)
        now = self.clock.now()
        group = CustomerGroup(chat_id, name or chat_id, owner, now, notice)
        group.members[owner] = GroupMember(owner, 1, now, 1, None)
        self.customer_groups[chat_id] = group
        for member in members:
            if member != owner:
                group.members[member] = self._new_member(member, join_scene=1, invitor=owner)
        return group

    def _new_member(self, userid: str, *, join_scene: int, invitor: str | None) -> GroupMember:
        member_type = 1 if userid in self.users else 2
        return GroupMember(userid, member_type, self.clock.now(), join_scene, invitor)

    def _group(self, chat_id: str) -> CustomerGroup:
        group = self.customer_groups.get(chat_id)
        if group is None:
            raise KeyError(f"no customer group {chat_id!r}")
        return group

    def join_customer_group(
        self,
        chat_id: str,
        member_ids: Iterable[str],
        *,
        join_scene: int = 3,
        invitor: str | None = None,
    ) -> MemberChange:
        group = self._group(chat_id)
        joined = tuple(m for m in member_ids if m not in group.members)
        for member in joined:
            group.members[member] = self._new_member(
                member, join_scene=join_scene, invitor=invitor
            )
        return self._bump(group, joined)

    def leave_customer_group(self, chat_id: str, member_ids: Iterable[str]) -> MemberChange:
        group = self._group(chat_id)
        left = tuple(m for m in member_ids if group.members.pop(m, None) is not None)
        return self._bump(group, left)

    def _bump(self, group: CustomerGroup, changed: tuple[str, ...]) -> MemberChange:
        last = group.member_version
        group.member_version = new_version()
        return MemberChange(group.chat_id, changed, last, group.member_version)

    def add_external_contact(
        self, external_userid: str, name: str, follow_userid: str, state: str = ""
    ) -> ExternalContact:
        """A customer added `follow_userid` (call again for a second follow user)."""
        self.add_user(follow_userid)
        contact = self.external_contacts.setdefault(
            external_userid, ExternalContact(external_userid, name)
        )
        contact.follow[follow_userid] = FollowUser(follow_userid, self.clock.now(), state)
        return contact

    def remove_follow_user(self, external_userid: str, follow_userid: str) -> None:
        """The customer deleted the member (del_follow_user): the relation is gone."""
        contact = self.external_contacts.get(external_userid)
        if contact is not None:
            contact.follow.pop(follow_userid, None)

    def is_friend(self, external_userid: str, userid: str) -> bool:
        contact = self.external_contacts.get(external_userid)
        return contact is not None and userid in contact.follow

    def add_corp_tag(self, group_name: str, tag_name: str) -> str:
        """Register 企业客户标签 `tag_name` in group `group_name`; returns its tag_id."""
        now = self.clock.now()
        group = next((g for g in self.tag_groups.values() if g.name == group_name), None)
        if group is None:
            group = TagGroup(new_id("et"), group_name, now, order=len(self.tag_groups))
            self.tag_groups[group.group_id] = group
        tag = CorpTag(new_id("et"), tag_name, group.group_id, now, order=len(group.tag_ids))
        self.tags[tag.tag_id] = tag
        group.tag_ids.append(tag.tag_id)
        return tag.tag_id

    def issue_welcome_code(self, userid: str, external_userid: str) -> str:
        """The WelcomeCode an add_external_contact callback carries: 20 s, single use."""
        code = WelcomeCode(new_id("", 32), userid, external_userid, self.clock.now())
        self.welcome_codes[code.code] = code
        return code.code

    def add_media(
        self,
        media_type: str,
        data_size: int,
        *,
        filename: str,
        robot_key: str | None = None,
        data: bytes = b"",
    ) -> Media:
        media = Media(
            new_id("3", 40), media_type, filename, data_size, self.clock.now(), robot_key, data
        )
        self.media[media.media_id] = media
        return media

    def add_member_image(self, data: bytes, *, filename: str = "image.jpg") -> str:
        """An image a member sends the app: WeCom keeps it as temporary media (3 days,
        fetchable with media/get); returns the MediaId its callback carries."""
        return self.add_media("image", len(data), filename=filename, data=data).media_id

    def live_media(self, media_id: str, *, robot_key: str | None = None) -> Media | None:
        """A media_id still usable (3 days), and only by the robot that uploaded it."""
        media = self.media.get(media_id)
        if media is None or media.robot_key != robot_key:
            return None
        if self.clock.now() - media.created_at >= MEDIA_TTL:
            return None
        return media

    # --- 企业群发 -------------------------------------------------------------------------

    def confirm_msg_template(
        self, msgid: str, chat_id_or_external_userid: str | None = None
    ) -> list[GroupMsgTarget]:
        """The member taps 发送 in 群发助手: pending targets are sent (or fail as WeCom's do)."""
        task = self.group_msgs.get(msgid)
        if task is None:
            raise KeyError(f"no msg template {msgid!r}")
        chosen = [
            t
            for t in task.targets
            if t.status == 0 and chat_id_or_external_userid in (None, t.target)
        ]
        for target in chosen:
            self._settle(task, target)
        return chosen

    def _settle(self, task: GroupMsgTask, target: GroupMsgTarget) -> None:
        now = self.clock.now()
        if target.kind == "external_userid" and not self.is_friend(target.target, target.sender):
            target.status = 2
            return
        if self._received_in_window(target.target) >= self.msg_template_quota():
            target.status = 3
            return
        target.status, target.send_time = 1, now
        self.deliveries.append(
            Delivery(
                "msg_template",
                target.target,
                task.body,
                now,
                recipients=(target.target,),
                sender=target.sender,
                msgid=task.msgid,
            )
        )

    def msg_template_quota(self) -> int:
        """How many 群发 a target may receive in the current window."""
        if self.msg_template_monthly_quota is not None:
            return self.msg_template_monthly_quota
        day = self.clock.now().astimezone(quota.WECOM_TZ).date()
        return quota.window(self.msg_template_quota_mode, day)[2]

    def _received_in_window(self, target: str) -> int:
        received = (d.at for d in self.delivered("msg_template") if d.target == target)
        return quota.received_in_window(self.msg_template_quota_mode, self.clock.now(), received)

    def post_from_toolbar(self, sender: str, chat: str, message: Json) -> None:
        """A member posted `message` into `chat` from the chat toolbar (client-side
        `sendChatMessage`: no API call reaches WeCom's server, the client sends it)."""
        self.deliveries.append(
            Delivery(
                "chat_tool", chat, message, self.clock.now(), recipients=(chat,), sender=sender
            )
        )

    # --- fault injection ----------------------------------------------------------------

    def fail_next(
        self, path: str, errcode: int, times: int = 1, errmsg: str | None = None
    ) -> None:
        """The next `times` calls to `path` answer `errcode` and do nothing."""
        self.faults.add_failure(path, errcode, times=times, errmsg=errmsg)

    def fail_forever(self, path: str, errcode: int, errmsg: str | None = None) -> None:
        self.faults.add_failure(path, errcode, times=None, errmsg=errmsg)

    def clear_failures(self) -> None:
        """Remove every injected fault (failures, delays, drops, 5xx)."""
        self.faults.clear()

    def delay(self, path: str, seconds: float) -> None:
        """Answer `path` after a real asyncio.sleep (the work is done first), until cleared."""
        self.faults.delays[cgi_path(path)] = seconds

    def accept_then_drop(self, path: str, times: int = 1) -> None:
        """Process and record the call, then lose the answer (a transport error for the client)."""
        self.faults.add_drops(path, times)

    def respond_5xx(self, path: str, times: int = 1, status: int = 502) -> None:
        """Answer with an HTTP 5xx from the gateway, before WeCom processes anything."""
        self.faults.add_server_errors(path, times, status)
