"""Just enough multipart/form-data parsing for uploads (no python-multipart dependency)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARAM = re.compile(r'(\w+)\*?=(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))')


@dataclass(frozen=True, slots=True)
class FilePart:
    name: str
    filename: str
    content_type: str
    data: bytes


def _params(header: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2) or m.group(3) or "" for m in _PARAM.finditer(header)}


def _boundary(content_type: str) -> bytes | None:
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    boundary = _params(content_type).get("boundary")
    return boundary.encode("latin-1") if boundary else None


def _part(raw: bytes) -> FilePart | None:
    head, sep, data = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    disposition = _params(headers.get("content-disposition", ""))
    if "name" not in disposition:
        return None
    return FilePart(
        name=disposition["name"],
        filename=disposition.get("filename", ""),
        content_type=headers.get("content-type", ""),
        data=data,
    )


def parse_multipart(content_type: str, body: bytes) -> list[FilePart]:
    """The parts of a multipart body; [] when it is not multipart at all."""
    boundary = _boundary(content_type)
    if boundary is None:
        return []
    parts: list[FilePart] = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break  # the closing delimiter
        # Each part sits between the CRLF after a delimiter and the CRLF before the next one.
        raw = chunk.removeprefix(b"\r\n").removesuffix(b"\r\n")
        part = _part(raw)
        if part is not None:
            parts.append(part)
    return parts
