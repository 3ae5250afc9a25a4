"""The sandbox's JS-SDK tickets and web OAuth (wecom-sidebar.md §2, §4, §7).

Tickets: the corp's (`get_jsapi_ticket`) and each app's (`ticket/get?type=agent_config`),
distinct, living 7200 s; fetching more than 400 an hour per corp or 100 per app answers
45009, as WeCom's limit says. OAuth: the authorize page mints a code for the member signed
in to the (pretend) WeCom client; `auth/getuserinfo` takes it once within 300 s (40029 on
reuse or later), and 50001 when the redirect host is not a trusted domain of the corp.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.wecom_sandbox.windows import SlidingWindow

TICKET_TTL = timedelta(seconds=7200)
CODE_TTL = timedelta(seconds=300)


@dataclass(slots=True)
class Ticket:
    value: str
    expires_at: datetime


@dataclass(slots=True)
class OAuthCode:
    code: str
    userid: str
    redirect_host: str
    issued_at: datetime
    used: bool = False


@dataclass(slots=True)
class JsapiState:
    corp_tickets: SlidingWindow = field(
        default_factory=lambda: SlidingWindow(400, timedelta(hours=1))
    )
    app_tickets: SlidingWindow = field(
        default_factory=lambda: SlidingWindow(100, timedelta(hours=1))
    )
    issued: dict[str, Ticket] = field(default_factory=dict)  # ticket value → ticket
    fetches: list[tuple[str, datetime]] = field(default_factory=list)  # (kind, when)
    codes: dict[str, OAuthCode] = field(default_factory=dict)
    # 可信域名: the hosts (with port) OAuth may redirect to; empty means any (a first run).
    trusted_hosts: set[str] = field(default_factory=set)
    # The member the WeCom client is signed in as, when the authorize call names nobody.
    signed_in: str | None = None

    def ticket(self, kind: str, now: datetime) -> Ticket:
        ticket = Ticket(f"{kind}-{secrets.token_urlsafe(48)}", now + TICKET_TTL)
        self.issued[ticket.value] = ticket
        self.fetches.append((kind, now))
        return ticket

    def fetch_count(self, kind: str) -> int:
        return sum(1 for fetched, _ in self.fetches if fetched == kind)

    def mint_code(self, userid: str, redirect_host: str, now: datetime) -> str:
        code = OAuthCode(secrets.token_urlsafe(24), userid, redirect_host, now)
        self.codes[code.code] = code
        return code.code

    def host_trusted(self, host: str) -> bool:
        return not self.trusted_hosts or host in self.trusted_hosts
