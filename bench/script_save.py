"""Script save and render benchmark: what bounding the sandbox costs a normal script.

    python bench/script_save.py               # 200 saves, 200 previews, 20,000 renders

1. Saves: the app in this process on a temp SQLite file, with its own pool of trial-render
   workers (as `uvicorn app.main:app` runs it). One warm-up save starts a worker, then N
   `POST /admin/api/scripts` with the built-in pack's texts (each a new key), N `PUT`s of a
   changed body and N previews, one at a time, through httpx. Printed: p50 / p99 latency per
   request and the longest the event loop went without running a 5 ms probe meanwhile
   (target < 100 ms), next to what checking the same content in-process costs (the render
   part of a save before trial workers; the rest of a save is the same either way).
2. Renders: every template field of the built-in pack rendered with the sample values, in the
   bounded sandbox and in Jinja2's plain immutable sandbox (what ran before the bounds).
   Printed: µs per render for each, and the ratio.

It prints figures; it exits 1 only when a save or a render fails.
"""

# A script that reports by printing.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

# Run as `python bench/script_save.py`: the repo root is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from app.clock import SystemClock  # the repo's modules: after the sys.path line above
from app.db import Base, create_engine
from app.settings import Settings
from scripts_library.loader import DEFAULT_PACK, read_pack
from scripts_library.render import render_text, template_fields
from scripts_library.validate import find_problems
from scripts_library.variables import SAMPLE
from tests.lag import loop_lag

TOKEN = "bench-admin-token"


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:6.1f} ms   p99 {p99 * 1000:6.1f} ms"


async def _timed(client: httpx.AsyncClient, method: str, path: str, body: object) -> float:
    started = time.perf_counter()
    response = await client.request(method, path, json=body)
    took = time.perf_counter() - started
    if response.status_code not in (200, 201):
        raise SystemExit(f"{method} {path}: {response.status_code} {response.text}")
    return took


def _edited(body: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in body.items() if k != "key"} | {"body": body["body"] + "！"}


async def bench_saves(count: int) -> None:
    import scripts_library.models  # noqa: F401  (its tables join the metadata)
    from app.main import create_app

    texts = [e.content for e in read_pack([DEFAULT_PACK]) if e.content.msgtype == "text"]
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite+aiosqlite:///{folder}/bench.db")
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        settings = Settings(ADMIN_TOKEN=TOKEN, _env_file=None)  # type: ignore[call-arg]
        app = create_app(
            settings=settings, clock=SystemClock(), engine=engine, sweeper=False, scheduler=False
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            base = "http://campbot/admin/api"
            async with httpx.AsyncClient(transport=transport, base_url=base, headers=headers) as c:
                bodies = [
                    {
                        "key": f"bench{i}",
                        "title": texts[i % len(texts)].title,
                        "msgtype": "text",
                        "body": texts[i % len(texts)].body,
                        "category": "daily",
                    }
                    for i in range(count + 1)
                ]
                await _timed(c, "POST", "/scripts", bodies.pop())  # warm: a worker starts
                async with loop_lag() as lag:
                    saves = [await _timed(c, "POST", "/scripts", b) for b in bodies]
                    edits = [
                        await _timed(c, "PUT", f"/scripts/{b['key']}", _edited(b)) for b in bodies
                    ]
                    previews = [
                        await _timed(c, "POST", f"/scripts/{b['key']}/preview", {}) for b in bodies
                    ]
        await engine.dispose()
    in_process = []
    for content in texts * (count // len(texts) + 1):
        started = time.perf_counter()
        find_problems(content, key="bench")
        in_process.append(time.perf_counter() - started)
    print(f"save (POST)          {_ms(saves)}")
    print(f"edit (PUT)           {_ms(edits)}")
    print(f"preview              {_ms(previews)}")
    print(f"check in-process     {_ms(in_process)}   (the render part of a save, before)")
    print(f"event loop stalled   {lag.worst * 1000:6.1f} ms at most   (target < 100 ms)")


def bench_renders(count: int) -> None:
    plain = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
    )
    sources = [s for e in read_pack([DEFAULT_PACK]) for _, s in template_fields(e.content)]
    compiled = [plain.from_string(s) for s in sources]
    variables = SAMPLE.variables()
    for source in sources:
        render_text(source, variables)  # compiled and cached, as at a second send
    rounds = max(1, count // len(sources))
    started = time.perf_counter()
    for _ in range(rounds):
        for source in sources:
            render_text(source, variables)
    bounded = (time.perf_counter() - started) / (rounds * len(sources))
    started = time.perf_counter()
    for _ in range(rounds):
        for template in compiled:
            template.render(variables).strip()
    before = (time.perf_counter() - started) / (rounds * len(sources))
    print(f"render, bounded      {bounded * 1e6:7.1f} µs per template field")
    ratio = bounded / before
    print(f"render, plain        {before * 1e6:7.1f} µs per template field   ({ratio:.2f}×)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=200)
    parser.add_argument("--renders", type=int, default=20_000)
    args = parser.parse_args(argv)
    asyncio.run(bench_saves(args.saves))
    bench_renders(args.renders)
    return 0


if __name__ == "__main__":
    sys.exit(main())
