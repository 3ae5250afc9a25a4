"""The error tree. Raise the specific class; only the edges (HTTP routes, the
dispatcher, the CLI) catch broadly.

    CampBotError
    ├── CallbackError            a posted callback is refused; carries the HTTP status
    │   ├── SignatureError           403  msg_signature does not match
    │   ├── ReceiveIdError           403  decrypted, but addressed to another corp
    │   ├── StaleCallbackError       403  timestamp older than the inbox keeps keys (a replay)
    │   ├── FutureCallbackError      403  timestamp further ahead than the clock skew allows
    │   ├── MalformedCallbackError   400  not XML, XML with DTD/entities, too many elements or
    │   │                                     too deep, bad base64/ciphertext
    │   ├── PayloadTooLargeError     413  body over the limit
    │   └── CallbackDisabledError    503  the WECOM_* callback settings are not set
    └── HandlerError             a bot handler failed; the inbox row is marked failed
"""

from __future__ import annotations


class CampBotError(Exception):
    """Base of every error CampBot raises on purpose."""


class RetryLater(CampBotError):
    """Work that failed for a reason outside it (a service unreachable or busy): the inbox
    leaves the event `received` and the sweeper runs it again later."""


class CallbackError(CampBotError):
    status_code = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureError(CallbackError):
    status_code = 403


class ReceiveIdError(CallbackError):
    status_code = 403


class StaleCallbackError(CallbackError):
    status_code = 403


class FutureCallbackError(CallbackError):
    status_code = 403


class MalformedCallbackError(CallbackError):
    status_code = 400


class PayloadTooLargeError(CallbackError):
    status_code = 413


class CallbackDisabledError(CallbackError):
    status_code = 503


class HandlerError(CampBotError):
    """A handler raised; wraps the original so the inbox row can record it."""
