"""File-format sniffing for uploads: WeCom checks the bytes, not the declared type."""

from __future__ import annotations

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
AMR_MAGIC = b"#!AMR"


def is_jpg_or_png(data: bytes) -> bool:
    return data.startswith(JPEG_MAGIC) or data.startswith(PNG_MAGIC)


def is_amr(data: bytes) -> bool:
    return data.startswith(AMR_MAGIC)


def is_mp4(data: bytes) -> bool:
    return data[4:8] == b"ftyp"
