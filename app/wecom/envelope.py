"""The `Encrypt` value of a posted callback, found before its signature is checked.

Until the signature over `Encrypt` is checked the body is anyone's, so nothing is built
from it but that one value, and reading it costs a few passes of C string search over the
body whatever the body holds. WeCom's envelope is a flat `<xml>` of a few text fields
(ToUserName, Encrypt, AgentID; optionally in CDATA, with whitespace between), so that is
all this accepts: no XML parser runs, and with it no DTD, entity, comment, attribute,
namespace or nested element is ever read — each is refused where it starts.
"""

from __future__ import annotations

import re

from app.errors import MalformedCallbackError

# More fields than any envelope WeCom sends, few enough that a hostile one stops at once.
MAX_FIELDS = 16

_BOM = b"\xef\xbb\xbf"
_WS = re.compile(rb"[ \t\r\n]*")
_DECLARATION = re.compile(rb"<\?xml[ \t\r\n][^<>?]{0,200}\?>")
_NAME = rb"([A-Za-z_][A-Za-z0-9_.-]{0,63})"
_OPEN = re.compile(rb"<" + _NAME + rb"[ \t\r\n]*(/?)>")
_CLOSE = re.compile(rb"</" + _NAME + rb"[ \t\r\n]*>")
_CDATA, _CDATA_END = b"<![CDATA[", b"]]>"


def envelope_encrypt(body: bytes) -> str:
    """The stripped `Encrypt` text of a callback envelope; 400 for anything else."""
    pos = _skip_ws(body, len(_BOM) if body.startswith(_BOM) else 0)
    declaration = _DECLARATION.match(body, pos)
    if declaration:
        pos = _skip_ws(body, declaration.end())
    root = _OPEN.match(body, pos)
    if root is None or root[2]:
        raise _refused(body, pos)
    pos = root.end()
    encrypt: bytes | None = None
    for _ in range(MAX_FIELDS + 1):
        pos = _skip_ws(body, pos)
        close = _CLOSE.match(body, pos)
        if close is not None:
            if close[1] != root[1]:
                raise MalformedCallbackError("envelope: mismatched closing tag")
            if _skip_ws(body, close.end()) != len(body):
                raise MalformedCallbackError("envelope: content after the closing tag")
            return _encrypt_text(encrypt)
        name, value, pos = _field(body, pos)
        if name == b"Encrypt":
            if encrypt is not None:
                raise MalformedCallbackError("envelope has more than one Encrypt field")
            encrypt = value
    raise MalformedCallbackError(f"envelope has more than {MAX_FIELDS} fields")


def _field(body: bytes, pos: int) -> tuple[bytes, bytes, int]:
    """One `<Name>text</Name>`, `<Name><![CDATA[text]]></Name>` or `<Name/>` at `pos`."""
    start = _OPEN.match(body, pos)
    if start is None:
        raise _refused(body, pos)
    if start[2]:
        return start[1], b"", start.end()
    pos = start.end()
    cdata_at = _skip_ws(body, pos)
    if body.startswith(_CDATA, cdata_at):
        begin = cdata_at + len(_CDATA)
        end = body.find(_CDATA_END, begin)
        if end < 0:
            raise MalformedCallbackError("envelope: unterminated CDATA section")
        value, pos = body[begin:end], _skip_ws(body, end + len(_CDATA_END))
    else:
        end = body.find(b"<", pos)
        if end < 0:
            raise MalformedCallbackError("envelope: unterminated field")
        value, pos = body[pos:end], end
        if b"&" in value:
            raise MalformedCallbackError("XML refused: entity references in the envelope")
    close = _CLOSE.match(body, pos)
    if close is None or close[1] != start[1]:
        raise _refused(body, pos)
    return start[1], value, close.end()


def _encrypt_text(encrypt: bytes | None) -> str:
    try:
        text = (encrypt or b"").decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise MalformedCallbackError("envelope: Encrypt is not UTF-8") from exc
    if not text:
        raise MalformedCallbackError("envelope has no Encrypt field")
    return text


def _skip_ws(body: bytes, pos: int) -> int:
    match = _WS.match(body, pos)
    assert match is not None  # `*` matches the empty string
    return match.end()


def _refused(body: bytes, pos: int) -> MalformedCallbackError:
    if body.startswith((b"<!DOCTYPE", b"<!ENTITY"), pos):
        return MalformedCallbackError("XML refused: DTDs and entities are not allowed")
    return MalformedCallbackError(
        f"not a WeCom envelope (a flat <xml> of text fields) at byte {pos}"
    )
