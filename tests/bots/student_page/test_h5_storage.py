"""The upload storage (a folder, content-addressed) and the image check by content."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from app.api.h5.uploads import image_type
from app.storage import FolderStorage, content_key, default_storage


def picture(fmt: str, size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(buffer, format=fmt)
    return buffer.getvalue()


async def test_same_bytes_are_stored_once_under_their_hash(tmp_path: Path) -> None:
    storage = FolderStorage(tmp_path / "uploads")
    data = picture("PNG")

    first = await storage.put(data, "image/png")
    second = await storage.put(data, "image/png")

    assert first == second == f"{hashlib.sha256(data).hexdigest()}.png"
    assert storage.keys() == [first]
    assert (tmp_path / "uploads" / first[:2] / first).read_bytes() == data
    assert await storage.read(first) == data
    assert await storage.exists(first)
    assert storage.url(first) is None  # the app serves it, after its own check


async def test_delete_and_unknown_keys(tmp_path: Path) -> None:
    storage = FolderStorage(tmp_path)
    key = await storage.put(b"GIF89a...", "image/gif")

    await storage.delete(key)
    await storage.delete(key)  # already gone: no error

    assert storage.keys() == []
    assert await storage.read(key) is None
    assert not await storage.exists(key)


@pytest.mark.parametrize(
    "key",
    ["../../etc/passwd", "a" * 64 + ".exe", "A" * 64 + ".png", "a" * 63 + ".png", "", "a.png"],
)
async def test_malformed_keys_never_reach_the_filesystem(tmp_path: Path, key: str) -> None:
    storage = FolderStorage(tmp_path)

    assert storage.path(key) is None
    assert await storage.read(key) is None
    assert not await storage.exists(key)


def test_only_image_types_have_keys() -> None:
    assert content_key(b"x", "image/webp").endswith(".webp")
    with pytest.raises(ValueError, match="unsupported content type"):
        content_key(b"x", "text/html")


def test_default_storage_is_uploads_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("app.storage._default", None)

    assert default_storage().root == tmp_path / "uploads"


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("GIF", "image/gif"), ("WEBP", "image/webp")],
)
def test_image_type_comes_from_the_bytes(fmt: str, expected: str) -> None:
    assert image_type(picture(fmt)) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"%PDF-1.7",
        picture("PNG")[:40],  # truncated
        picture("BMP"),  # an image, but not one we accept
        picture("TIFF"),
    ],
)
def test_anything_else_is_not_an_image(data: bytes) -> None:
    assert image_type(data) is None


def test_an_image_of_too_many_pixels_is_refused() -> None:
    huge = picture("PNG", size=(10_000, 7_000))  # 70 Mpx, a small file

    assert image_type(huge) == ""
