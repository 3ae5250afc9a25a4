"""What is kept of an image: no GPS, camera, time, XMP, comments or extra pictures, the
pixels' bytes untouched (lossless), the Orientation still there; a file with nothing to take
out is kept byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time

import pytest
from PIL import Image, ImageOps, PngImagePlugin
from starlette.datastructures import UploadFile

from app.api.h5 import uploads
from app.api.h5.uploads import UploadRefused, check_image
from app.image_metadata import MetadataError, minimal_exif, strip_metadata
from tests.images import (
    ORIENTATION,
    SECRETS,
    XMP,
    assert_private,
    phone_exif,
    phone_jpeg,
    picture,
    pixels,
)


def saved(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_a_phone_jpeg_loses_what_identifies_it_and_keeps_its_pixels_and_orientation(
    progressive: bool,
) -> None:
    original = phone_jpeg(orientation=6, progressive=progressive)
    assert all(secret in original for secret in SECRETS)

    kept = strip_metadata(original, "image/jpeg")

    assert_private(kept, orientation=6)
    assert kept.count(b"\xff\xd8") == 1  # the second picture after the end is gone
    assert pixels(kept) == pixels(original)  # not re-encoded
    with Image.open(io.BytesIO(kept)) as image:
        assert image.size == (48, 32)
        assert ImageOps.exif_transpose(image).size == (32, 48)  # still shown upright


def test_an_upright_photo_keeps_no_exif_at_all() -> None:
    kept = strip_metadata(phone_jpeg(orientation=1), "image/jpeg")
    assert b"Exif" not in kept
    assert_private(kept, orientation=None)


def test_a_jfif_thumbnail_goes_and_the_colour_profile_stays() -> None:
    icc = b"\x00" * 128 + b"profile-bytes"
    original = saved(picture(), "JPEG", icc_profile=icc)
    # A JFIF header announcing a 1×1 thumbnail (3 bytes of it).
    thumbnail = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x01\x01" + b"\x10\x20\x30"
    app0_end = 4 + int.from_bytes(original[4:6], "big")
    with_thumb = original[:2] + b"\xff\xe0" + (len(thumbnail) + 2).to_bytes(2, "big")
    with_thumb += thumbnail + original[app0_end:]

    kept = strip_metadata(with_thumb, "image/jpeg")

    assert b"\x10\x20\x30" not in kept
    with Image.open(io.BytesIO(kept)) as image:
        assert image.info["icc_profile"] == icc
        assert image.info["jfif_version"] == (1, 1)
    assert pixels(kept) == pixels(original)


def test_a_png_loses_text_time_exif_and_private_chunks() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "shot at home")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    info.add(b"tIME", b"\x07\xea\x03\x01\x0a\x00\x00")
    info.add(b"caBX", b"c2pa manifest: iPhone")
    original = saved(picture(), "PNG", exif=phone_exif(8), pnginfo=info)

    kept = strip_metadata(original, "image/png")

    assert b"tIME" not in kept
    assert b"caBX" not in kept
    assert_private(kept, orientation=8)
    assert pixels(kept) == pixels(original)


@pytest.mark.parametrize("lossless", [False, True], ids=["lossy", "lossless"])
def test_a_webp_loses_exif_and_xmp(lossless: bool) -> None:
    original = saved(picture(), "WEBP", exif=phone_exif(3), xmp=XMP, lossless=lossless)

    kept = strip_metadata(original, "image/webp")

    assert_private(kept, orientation=3)
    assert pixels(kept) == pixels(original)
    assert int.from_bytes(kept[4:8], "little") == len(kept) - 8


def test_an_animated_gif_loses_comments_and_xmp_and_keeps_frames_and_loop() -> None:
    frames = [picture(), picture().rotate(180)]
    gif = saved(
        frames[0], "GIF", save_all=True, append_images=frames[1:], comment=b"shot at home", loop=0
    )
    xmp_block = b"\x21\xff\x0bXMP DataXMP" + bytes([len(XMP[:200])]) + XMP[:200] + b"\x00"
    original = gif[:-1] + xmp_block + b"\x3b"

    kept = strip_metadata(original, "image/gif")

    assert_private(kept, orientation=None)
    with Image.open(io.BytesIO(kept)) as image, Image.open(io.BytesIO(original)) as before:
        assert image.n_frames == 2
        assert image.info["loop"] == 0
        for n in range(2):
            image.seek(n)
            before.seek(n)
            assert image.convert("RGB").tobytes() == before.convert("RGB").tobytes()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_an_image_without_metadata_is_kept_byte_for_byte(fmt: str) -> None:
    original = saved(picture(), fmt)
    content_type = Image.MIME[fmt]
    assert strip_metadata(original, content_type) == original


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"\xff\xd8\xff\xe1\xff\xff" + b"Exif\x00\x00", "image/jpeg"),  # segment past the end
        (b"\x89PNG\r\n\x1a\n\x00\x00\x10\x00IHDR", "image/png"),
        (b"RIFF\x40\x00\x00\x00WEBPVP8 \x30\x00\x00\x00", "image/webp"),
        (b"GIF89a\x01\x00\x01\x00\x00\x00\x00\x99", "image/gif"),
    ],
)
def test_a_container_that_cannot_be_walked_is_an_error(data: bytes, content_type: str) -> None:
    with pytest.raises(MetadataError):
        strip_metadata(data, content_type)


def test_the_minimal_exif_holds_the_orientation_only() -> None:
    assert minimal_exif(None) is None
    assert minimal_exif(1) is None  # upright: nothing to say
    assert minimal_exif(9) is None
    block = minimal_exif(6)
    assert block is not None
    exif = Image.Exif()
    exif.load(block)
    assert dict(exif) == {ORIENTATION: 6}


def test_an_image_a_member_sent_is_stored_stripped_and_keyed_by_what_is_stored() -> None:
    checked = check_image(phone_jpeg())

    assert_private(checked.data, orientation=6)
    assert checked.content_type == "image/jpeg"
    assert checked.storage_key() == hashlib.sha256(checked.data).hexdigest() + ".jpg"


def test_a_jpeg_whose_segments_run_past_its_end_is_refused_not_stored_as_is() -> None:
    plain = saved(picture(), "JPEG")
    broken = plain[:-2] + b"\xff\xc4\xff\xff"  # after the scan, a segment longer than the file
    Image.open(io.BytesIO(broken)).verify()  # Pillow alone would take it
    with pytest.raises(UploadRefused) as refused:
        check_image(broken)
    assert refused.value.status_code == 415


async def test_stripping_big_photos_does_not_stall_the_event_loop() -> None:
    noise = Image.frombytes("RGB", (2400, 2400), os.urandom(2400 * 2400 * 3))
    photo = saved(noise, "JPEG", quality=95, exif=phone_exif(6), xmp=XMP)
    assert len(photo) > 6_000_000
    files = [
        UploadFile(io.BytesIO(photo), size=len(photo), filename=f"{n}.jpg")
        for n in range(uploads.MAX_IMAGES)
    ]
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    try:
        await asyncio.sleep(0.02)
        checked = await uploads._read_images(files)
    finally:
        ticking.cancel()

    assert len(checked) == uploads.MAX_IMAGES
    assert_private(checked[0].data, orientation=6)
    assert len(gaps) > 5
    assert max(gaps) < 0.1, f"the loop stalled {max(gaps) * 1000:.0f} ms"
