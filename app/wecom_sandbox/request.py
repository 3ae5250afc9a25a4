"""An API request as handlers see it, with the field checks WeCom applies."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.wecom_sandbox.errcodes import WeComError
from app.wecom_sandbox.multipart import FilePart, parse_multipart
from app.wecom_sandbox.records import Json


@dataclass(slots=True)
class ApiRequest:
    method: str
    path: str
    query: dict[str, str]
    body: bytes = b""
    content_type: str = ""
    client_ip: str = "127.0.0.1"
    agentid: int | None = None  # the app whose access_token authorised the call
    _files: list[FilePart] | None = field(default=None, repr=False)

    def json(self, *, optional: bool = False) -> Json:
        """The JSON object body; a GET where WeCom wants a POST body fails here with 40058."""
        if not self.body.strip():
            if optional:
                return {}
            raise WeComError(40058)
        parsed = parse_json(self.body)
        if not isinstance(parsed, dict):
            raise WeComError(40058, "Warning: wrong json format.")
        return parsed

    def files(self) -> list[FilePart]:
        if self._files is None:
            self._files = parse_multipart(self.content_type, self.body)
        return self._files

    def file(self, name: str) -> FilePart | None:
        return next((part for part in self.files() if part.name == name), None)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def text_of(obj: Json, key: str) -> str:
    """A string field, "" when absent; a non-string is a malformed request (40058)."""
    value = obj.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise WeComError(40058)
    return value


def object_of(obj: Json, key: str) -> Json:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WeComError(40058)
    return value


def str_list(obj: Json, key: str) -> list[str]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise WeComError(40058)
    return list(value)


def int_of(obj: Json, key: str, default: int) -> int:
    value = obj.get(key, default)
    # bool is an int in Python, never in WeCom's JSON.
    if isinstance(value, bool) or not isinstance(value, int):
        raise WeComError(40058)
    return value
