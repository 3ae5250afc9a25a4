"""Where uploaded files (check-in images) live: a small interface and a folder implementation.

Keys are the SHA-256 of the content plus an extension (`<64 hex>.png`), so the same image
uploaded twice is stored once, and a key names nothing about who sent it. The folder keeps
a file at `<root>/<first two hex>/<key>` (fan-out, so no directory holds everything).

A storage never lists its keys to anyone: callers serve a key only after checking that the
asker may see it (the H5 page checks the member's own entries).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Protocol

# Like the SQLite default: relative to the working directory the server was started in.
DEFAULT_FOLDER = Path("uploads")

EXTENSIONS: dict[str, str] = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
}
CONTENT_TYPES: dict[str, str] = {ext: ctype for ctype, ext in EXTENSIONS.items()}
_KEY_RE = re.compile(r"([0-9a-f]{64})\.(jpg|png|gif|webp)")


class Storage(Protocol):
    async def put(self, data: bytes, content_type: str) -> str:
        """Store `data` (idempotent: the same bytes give the same key); answers the key."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def read(self, key: str) -> bytes | None:
        """The stored bytes, or None for an unknown or malformed key."""
        ...

    def url(self, key: str) -> str | None:
        """A URL a browser may load directly (e.g. a signed object-store URL), or None when
        the app must serve the bytes itself (the folder)."""
        ...

    async def delete(self, key: str) -> None: ...


def content_key(data: bytes, content_type: str) -> str:
    """The key `data` is stored under; ValueError for a type storage does not keep."""
    try:
        extension = EXTENSIONS[content_type]
    except KeyError:
        raise ValueError(f"unsupported content type {content_type!r}") from None
    return f"{hashlib.sha256(data).hexdigest()}.{extension}"


def is_key(key: str) -> bool:
    return _KEY_RE.fullmatch(key) is not None


def content_type_of(key: str) -> str:
    return CONTENT_TYPES[key.rsplit(".", 1)[1]]


class FolderStorage:
    """Files in a local folder (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path | None:
        """The file for a well-formed key; None otherwise (no path traversal, ever)."""
        if not is_key(key):
            return None
        return self.root / key[:2] / key

    async def put(self, data: bytes, content_type: str) -> str:
        # Hashing (SHA-256 of the whole file) and the file system calls all in one trip to
        # the thread pool: none of them belongs on the event loop.
        return await asyncio.to_thread(self._put, data, content_type)

    def _put(self, data: bytes, content_type: str) -> str:
        key = content_key(data, content_type)
        path = self.path(key)
        assert path is not None  # content_key makes well-formed keys
        if not path.exists():
            _write_atomically(path, data)
        return key

    async def exists(self, key: str) -> bool:
        path = self.path(key)
        return path is not None and path.is_file()

    async def read(self, key: str) -> bytes | None:
        path = self.path(key)
        if path is None:
            return None
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    def url(self, key: str) -> str | None:
        return None

    async def delete(self, key: str) -> None:
        path = self.path(key)
        if path is not None:
            path.unlink(missing_ok=True)

    def keys(self) -> list[str]:
        """Every stored key (for tests, benchmarks and maintenance; never served)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.glob("??/*") if is_key(p.name))


def _write_atomically(path: Path, data: bytes) -> None:
    """Write through a temp file and rename, so a reader never sees half a file and two
    writers of the same key both end with the whole of it."""
    # A temp name unique to this process and thread (tempfile.mkstemp's random names cost
    # more than the write of a photo); O_EXCL still refuses a leftover of the same name.
    temp = path.with_name(f".part-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        fd = os.open(temp, _TEMP_FLAGS, 0o600)
    except FileNotFoundError:  # the fan-out folder's first file
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, _TEMP_FLAGS, 0o600)
    except FileExistsError:  # left behind by a crash mid-write of this very key
        os.unlink(temp)
        fd = os.open(temp, _TEMP_FLAGS, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


_default: FolderStorage | None = None


def default_storage() -> FolderStorage:
    """`uploads/` in the working directory, made on first use (the app's default)."""
    global _default
    if _default is None:
        _default = FolderStorage(DEFAULT_FOLDER.resolve())
    return _default


_app_storage: Storage | None = None


def use_storage(storage: Storage | None) -> None:
    """Make `storage` the one `app_storage()` answers (None: the default folder again).
    For code with no request to ask (event handlers storing an image a member sent); tests
    point it at a temporary folder."""
    global _app_storage
    _app_storage = storage


def app_storage() -> Storage:
    """The storage set with `use_storage`, else the default folder `uploads/`."""
    return _app_storage if _app_storage is not None else default_storage()
