"""Loading the picture of an image script: a file in the content folder, or a URL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from scripts_library.errors import RenderError

CONTENT_DIR = Path(__file__).resolve().parent / "content"
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # the largest any channel takes (app message, mass send)


class ImageError(RenderError):
    """The picture could not be read; the message names it."""


@dataclass(frozen=True, slots=True)
class ImageLoader:
    """Reads `path` refs under `root` (never outside it) and fetches `url` refs.

    Pass `client` to reach URLs through a given transport (tests); without one a short-lived
    client is made per fetch. Loading is blocking: async callers use a thread.
    """

    root: Path = CONTENT_DIR
    client: httpx.Client | None = None
    timeout: float = 10.0
    max_bytes: int = MAX_IMAGE_BYTES

    def __call__(self, ref: str) -> bytes:
        if ref.startswith(("http://", "https://")):
            return self._fetch(ref)
        return self._read(ref)

    def _read(self, ref: str) -> bytes:
        root = self.root.resolve()
        path = (root / ref).resolve()
        if not path.is_relative_to(root):
            raise ImageError(f"图片路径「{ref}」不在内容目录（{root}）里。")
        try:
            if path.stat().st_size > self.max_bytes:
                raise ImageError(f"图片「{ref}」超过 {self.max_bytes} 字节。")
            return path.read_bytes()
        except OSError:
            raise ImageError(f"读不到图片「{ref}」，请确认文件存在。") from None

    def _fetch(self, url: str) -> bytes:
        client = self.client or httpx.Client(timeout=self.timeout, follow_redirects=True)
        try:
            with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise ImageError(f"下载图片失败：{url} 返回 HTTP {response.status_code}。")
                return self._read_capped(response, url)
        except httpx.HTTPError as exc:
            raise ImageError(f"下载图片失败：{url}（{type(exc).__name__}）。") from None
        finally:
            if self.client is None:
                client.close()

    def _read_capped(self, response: httpx.Response, url: str) -> bytes:
        data = bytearray()
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) > self.max_bytes:
                raise ImageError(f"图片 {url} 超过 {self.max_bytes} 字节。")
        return bytes(data)


@dataclass(frozen=True, slots=True)
class Preloaded:
    """An image loader over pictures fetched beforehand: the library loads images
    synchronously, which must not block the event loop in a request (and a trial render
    takes it to a worker process)."""

    ref: str | None = None
    data: bytes = b""
    error: ImageError | None = None

    def __call__(self, ref: str) -> bytes:
        if self.error is not None:
            raise self.error
        if ref != self.ref:
            raise ImageError(f"读不到图片「{ref}」。")
        return self.data
