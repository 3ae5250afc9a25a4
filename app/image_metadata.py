"""Identifying metadata taken out of an image before it is stored: losslessly, by walking the
file's container and leaving the pixels' bytes as they are (re-encoding would cost time and
quality).

A phone photo carries where it was taken (GPS), the phone (make, model, serial), when, the
software, a thumbnail of the uncropped original, XMP, IPTC, comments — none of which a
check-in needs, and all of which would be served to whoever sees the image. What is kept is
what draws the image right: the coded image data, colour profiles, and the EXIF Orientation,
rewritten as a minimal EXIF block that holds nothing else (browsers and WeCom rotate by it).

- JPEG: drops APP1 (EXIF, XMP), APP2 other than ICC_PROFILE (MPF), APP3–APP13 (IPTC,
  Photoshop), APP15, APP0 other than JFIF (JFXX thumbnails), a JFIF thumbnail, COM segments,
  and whatever follows the end of the image (the extra pictures of MPF files, each with its
  own EXIF). APP14 (Adobe colour transform) and every coding segment stay.
- PNG: keeps critical chunks and the ancillary chunks that affect rendering or animation
  (tRNS, gAMA, cHRM, sRGB, iCCP, cICP, sBIT, bKGD, hIST, pHYs, sPLT, acTL, fcTL, fdAT…);
  drops eXIf, tEXt, zTXt, iTXt, tIME and any other (private) chunk.
- WebP: keeps VP8/VP8L/VP8X/ALPH/ANIM/ANMF/ICCP; drops EXIF, XMP and unknown chunks, and
  clears their flags in VP8X.
- GIF: drops comment extensions and application extensions other than the looping ones.

Blocking (it walks the whole file): call it off the event loop.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from PIL import Image

ORIENTATION_TAG = 0x0112
EXIF_HEADER = b"Exif\x00\x00"


class MetadataError(ValueError):
    """The file's structure cannot be walked (truncated or malformed), so it cannot be
    vouched for: the caller refuses it rather than store it unstripped."""


def strip_metadata(data: bytes, content_type: str) -> bytes:
    """`data` without identifying metadata (the module docstring says what goes and what
    stays); MetadataError when its container is malformed, ValueError for another type."""
    try:
        strip = _STRIPPERS[content_type]
    except KeyError:
        raise ValueError(f"unsupported content type {content_type!r}") from None
    try:
        return strip(data)
    except (IndexError, struct.error) as exc:  # read past the end of a truncated file
        raise MetadataError(f"truncated {content_type}") from exc


def minimal_exif(orientation: int | None) -> bytes | None:
    """A TIFF-structured EXIF block (without the `Exif\\0\\0` prefix) holding only the
    Orientation tag; None when there is nothing to keep (absent, 1 = upright, or invalid)."""
    if orientation is None or not 2 <= orientation <= 8:
        return None
    entry = struct.pack(">HHIHH", ORIENTATION_TAG, 3, 1, orientation, 0)  # SHORT, 1 value
    return b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + entry + struct.pack(">I", 0)


def _orientation(exif_block: bytes) -> int | None:
    """The Orientation in an EXIF block (with or without the `Exif\\0\\0` prefix)."""
    exif = Image.Exif()
    try:
        exif.load(exif_block)
    except Exception:  # Pillow raises several types on a broken block: no orientation then
        return None
    value = exif.get(ORIENTATION_TAG)
    return value if isinstance(value, int) else None


# --------------------------------------------------------------------------- JPEG

_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
_APP0, _APP1, _APP2, _APP14, _APP15, _COM = 0xE0, 0xE1, 0xE2, 0xEE, 0xEF, 0xFE
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RST0–7: no length


def _strip_jpeg(data: bytes) -> bytes:
    if data[:2] != b"\xff\xd8":
        raise MetadataError("not a JPEG")
    pieces = [data[:2]]
    exif_at = 1  # where the EXIF segment goes: after SOI and JFIF, as the standard wants
    orientation: int | None = None
    pos, size = 2, len(data)
    while pos < size:
        if data[pos] != 0xFF:  # junk between segments (decoders skip it; so do we)
            found = data.find(b"\xff", pos)
            pos = size if found < 0 else found
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == _EOI:
            pieces.append(b"\xff\xd9")
            break  # anything after the image (MPF's extra pictures) is not ours to keep
        if marker in _STANDALONE:
            pieces.append(data[pos : pos + 2])
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > size:
            raise MetadataError("JPEG segment runs past the end")
        payload = data[pos + 4 : end]
        if marker == _SOS:
            scan_end = _scan_end(data, end)
            pieces.append(data[pos:scan_end])
            pos = scan_end
            continue
        if marker == _APP1 and payload.startswith(EXIF_HEADER) and orientation is None:
            orientation = _orientation(payload)
        kept = _kept_jpeg_segment(marker, payload, data[pos:end])
        if kept is not None:
            pieces.append(kept)
            if marker == _APP0 and exif_at == len(pieces) - 1:
                exif_at = len(pieces)
        pos = end
    exif = minimal_exif(orientation)
    if exif is not None:
        block = EXIF_HEADER + exif
        pieces.insert(exif_at, b"\xff\xe1" + struct.pack(">H", len(block) + 2) + block)
    return b"".join(pieces)


def _kept_jpeg_segment(marker: int, payload: bytes, segment: bytes) -> bytes | None:
    """The segment as it is stored (None: dropped)."""
    if marker == _APP0:
        if not payload.startswith(b"JFIF\x00") or len(payload) < 14:
            return None  # JFXX (a thumbnail) and other APP0 uses
        if payload[12] or payload[13]:  # a JFIF thumbnail: keep the header, not the picture
            header = payload[:12] + b"\x00\x00"
            return b"\xff\xe0" + struct.pack(">H", len(header) + 2) + header
        return segment
    if marker == _APP2:
        return segment if payload.startswith(b"ICC_PROFILE\x00") else None
    if marker == _APP14:
        return segment  # Adobe: how to convert the colours back (YCCK/CMYK)
    if _APP1 <= marker <= _APP15 or marker == _COM:
        return None
    return segment


def _scan_end(data: bytes, pos: int) -> int:
    """Where the entropy-coded data that starts at `pos` ends: the next marker that is not
    a stuffed 0xFF00 or a restart marker (or the end of a truncated file)."""
    size = len(data)
    while True:
        found = data.find(b"\xff", pos)
        if found < 0 or found + 1 >= size:
            return size
        following = data[found + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            pos = found + 2
        elif following == 0xFF:
            pos = found + 1
        else:
            return found


# --------------------------------------------------------------------------- PNG

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary chunks that change how the image looks or moves; every other ancillary chunk
# (text, time, EXIF, private ones such as C2PA's caBX) goes.
_PNG_RENDERING = frozenset(
    {
        b"tRNS",
        b"gAMA",
        b"cHRM",
        b"sRGB",
        b"iCCP",
        b"cICP",
        b"mDCV",
        b"mDCv",
        b"cLLI",
        b"cLLi",
        b"sBIT",
        b"bKGD",
        b"hIST",
        b"pHYs",
        b"sPLT",
        b"acTL",
        b"fcTL",
        b"fdAT",
    }
)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _strip_png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        raise MetadataError("not a PNG")
    pieces = [_PNG_SIGNATURE]
    orientation: int | None = None
    exif_at = 0
    pos, size = len(_PNG_SIGNATURE), len(data)
    while pos < size:
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > size:
            raise MetadataError("PNG chunk runs past the end")
        if kind == b"eXIf" and orientation is None:
            orientation = _orientation(data[pos + 8 : pos + 8 + length])
        critical = kind[:1].isupper()
        if critical or kind in _PNG_RENDERING:
            pieces.append(data[pos:end])
            if kind == b"IHDR":
                exif_at = len(pieces)
        pos = end
        if kind == b"IEND":
            break  # nothing after the end is part of the image
    exif = minimal_exif(orientation)
    if exif is not None and exif_at:
        pieces.insert(exif_at, _png_chunk(b"eXIf", exif))
    return b"".join(pieces)


# --------------------------------------------------------------------------- WebP

_WEBP_KEPT = frozenset({b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"ICCP"})
_VP8X_XMP, _VP8X_EXIF = 0x04, 0x08


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) % 2 else b"")


def _strip_webp(data: bytes) -> bytes:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise MetadataError("not a WebP")
    (riff_size,) = struct.unpack_from("<I", data, 4)
    size = min(len(data), 8 + riff_size)
    chunks: list[bytearray] = []
    orientation: int | None = None
    pos = 12
    while pos + 8 <= size:
        kind, length = struct.unpack_from("<4sI", data, pos)
        end = pos + 8 + length
        if end > size:
            raise MetadataError("WebP chunk runs past the end")
        if kind == b"EXIF" and orientation is None:
            orientation = _orientation(data[pos + 8 : end])
        if kind in _WEBP_KEPT:
            chunks.append(bytearray(_riff_chunk(kind, data[pos + 8 : end])))
        pos = end + length % 2
    exif = minimal_exif(orientation)
    extended = next((c for c in chunks if c[:4] == b"VP8X"), None)
    if extended is not None:
        flags = extended[8] & ~(_VP8X_XMP | _VP8X_EXIF)
        extended[8] = flags | (_VP8X_EXIF if exif is not None else 0)
        if exif is not None:
            chunks.append(bytearray(_riff_chunk(b"EXIF", exif)))
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


# --------------------------------------------------------------------------- GIF

_GIF_KEPT_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")  # looping


def _gif_sub_blocks_end(data: bytes, pos: int) -> int:
    """The position after the data sub-blocks starting at `pos` (and their terminator)."""
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        pos += 1 + length
        if pos >= len(data):
            raise MetadataError("GIF data runs past the end")


def _gif_colour_table(flags: int) -> int:
    return 3 * (2 ** ((flags & 0x07) + 1)) if flags & 0x80 else 0


def _strip_gif(data: bytes) -> bytes:
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise MetadataError("not a GIF")
    pos = 13 + _gif_colour_table(data[10])
    pieces = [data[:pos]]
    while True:
        introducer = data[pos] if pos < len(data) else 0x3B  # a missing trailer is common
        if introducer == 0x3B:  # trailer: nothing after it is part of the image
            pieces.append(b"\x3b")
            return b"".join(pieces)
        if introducer == 0x2C:  # an image: descriptor, local colour table, LZW data
            start = pos + 10 + _gif_colour_table(data[pos + 9])
            end = _gif_sub_blocks_end(data, start + 1)
            pieces.append(data[pos:end])
        elif introducer == 0x21:  # an extension
            label = data[pos + 1]
            end = _gif_sub_blocks_end(data, pos + 2)
            if _gif_extension_kept(label, data[pos + 2 : end]):
                pieces.append(data[pos:end])
        else:
            raise MetadataError(f"unknown GIF block 0x{introducer:02x}")
        pos = end


def _gif_extension_kept(label: int, blocks: bytes) -> bool:
    if label == 0xFE:  # comment
        return False
    if label == 0xFF:  # application: the first sub-block is its 11-byte identifier
        return blocks[:1] == b"\x0b" and blocks[1:12] in _GIF_KEPT_APPS
    return True  # graphic control, plain text


_STRIPPERS: dict[str, Callable[[bytes], bytes]] = {
    "image/jpeg": _strip_jpeg,
    "image/png": _strip_png,
    "image/webp": _strip_webp,
    "image/gif": _strip_gif,
}
