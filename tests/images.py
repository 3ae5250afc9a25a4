"""Images as phones make them: EXIF with GPS, the camera, times and an Orientation, for the
tests that check what CampBot stores of them, and the check that none of it is left."""

from __future__ import annotations

import io

from PIL import Image

ORIENTATION, MAKE, MODEL, DATETIME, SOFTWARE = 0x0112, 0x010F, 0x0110, 0x0132, 0x0131
GPS_IFD = 0x8825
IDENTIFYING = (MAKE, MODEL, DATETIME, SOFTWARE, GPS_IFD)
GPS_SHANGHAI = {1: "N", 2: (31.0, 14.0, 5.0), 3: "E", 4: (121.0, 28.0, 1.0)}
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="31,14.08N"/>'
    b"</rdf:RDF></x:xmpmeta>"
)
SECRETS = (b"Apple", b"iPhone", b"2026:03:01", b"xmpmeta", b"shot at home")  # a phone_jpeg's


def phone_exif(orientation: int = 6) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE] = "Apple"
    exif[MODEL] = "iPhone 15 Pro"
    exif[DATETIME] = "2026:03:01 10:00:00"
    exif[SOFTWARE] = "17.3.1"
    exif.get_ifd(GPS_IFD).update(GPS_SHANGHAI)
    return exif


def picture(size: tuple[int, int] = (48, 32)) -> Image.Image:
    """A picture whose rotation shows: wider than tall, a different colour per quarter."""
    image = Image.new("RGB", size, (240, 240, 240))
    width, height = size
    for n, colour in enumerate([(200, 30, 30), (30, 160, 30), (30, 30, 200), (220, 180, 20)]):
        x, y = (n % 2) * width // 2, (n // 2) * height // 2
        image.paste(colour, (x, y, x + width // 2, y + height // 2))
    return image


def phone_jpeg(*, orientation: int = 6, progressive: bool = False) -> bytes:
    """A JPEG as a phone saves it: EXIF (GPS, camera, time, Orientation), XMP with the
    position again, a comment, and a second picture after the end (as MPF files have)."""
    out = io.BytesIO()
    picture().save(
        out,
        format="JPEG",
        exif=phone_exif(orientation),
        xmp=XMP,
        comment=b"shot at home",
        progressive=progressive,
        quality=90,
    )
    trailer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(trailer, format="JPEG", exif=phone_exif(orientation))
    return out.getvalue() + trailer.getvalue()


def pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGBA").tobytes()


def assert_private(data: bytes, *, orientation: int | None) -> None:
    """Nothing of a phone_jpeg's identifying metadata is left in `data`; the Orientation is."""
    for secret in SECRETS:
        assert secret not in data
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        exif = image.getexif()
        assert not any(tag in exif for tag in IDENTIFYING)
        assert not exif.get_ifd(GPS_IFD)
        assert exif.get(ORIENTATION) == orientation
        assert not {"comment", "xmp", "XML:com.adobe.xmp", "Comment"} & set(image.info)


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    """A plain green PNG, for uploads whose content does not matter."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (26, 173, 25)).save(buffer, format="PNG")
    return buffer.getvalue()
