"""Content packs: YAML files of scripts, imported by key (idempotently) and exported back."""

from __future__ import annotations

import asyncio
import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.common import Actor, snapshot
from scripts_library.errors import Problem, ScriptValidationError, TemplateLimitError
from scripts_library.images import CONTENT_DIR
from scripts_library.models import Script, ScriptContent
from scripts_library.service import AUDIT, SaveOutcome, list_scripts, save_content
from scripts_library.trial import TrialPool
from scripts_library.validate import find_problems
from scripts_library.yamlio import dump, dump_content, load_entries, to_entry

DEFAULT_PACK = CONTENT_DIR
PACK_SUFFIXES = (".yaml", ".yml")
EXPORT_HEADER = (
    "# 话术库导出（campbot scripts export）。可以直接编辑后用 campbot scripts import 导入。\n"
)


@dataclass(frozen=True, slots=True)
class PackEntry:
    key: str
    content: ScriptContent
    source: str  # the file it came from


@dataclass(slots=True)
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def pack_files(paths: Sequence[Path]) -> list[Path]:
    """The YAML files named, a folder standing for its *.yaml files in name order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in PACK_SUFFIXES)
        else:
            files.append(path)
    return files


def read_pack(
    paths: Sequence[Path], *, images: Callable[[str], bytes] | None = None
) -> list[PackEntry]:
    """Every script of the pack, checked; ScriptValidationError lists all problems at once,
    each field prefixed with `file:key`."""
    entries: list[PackEntry] = []
    problems: list[Problem] = []
    for path in pack_files(paths):
        try:
            pairs = load_entries(path.read_text(encoding="utf-8"), source=path.name)
        except ScriptValidationError as exc:
            problems += exc.problems
            continue
        except OSError as exc:
            problems.append(Problem(path.name, f"读不到文件：{exc.strerror or exc}"))
            continue
        entries += [PackEntry(key, content, path.name) for key, content in pairs]
    problems += _duplicate_problems(entries)
    for entry in entries:
        found = find_problems(entry.content, key=entry.key, images=images)
        problems += [Problem(f"{entry.source}:{entry.key}.{p.field}", p.message) for p in found]
    if problems:
        raise ScriptValidationError(problems)
    return entries


def _duplicate_problems(entries: list[PackEntry]) -> list[Problem]:
    first: dict[str, str] = {}
    problems = []
    for entry in entries:
        if entry.key in first:
            problems.append(
                Problem(
                    f"{entry.source}:{entry.key}.key", f"key 重复：{first[entry.key]} 里已有。"
                )
            )
        first.setdefault(entry.key, entry.source)
    return problems


async def import_pack(
    *,
    session: AsyncSession,
    paths: Sequence[Path],
    author: str,
    now: datetime | None = None,
    images: Callable[[str], bytes] | None = None,
) -> ImportReport:
    """Create or update every script of the pack by key; nothing is written if any is invalid.

    Scripts in the database but not in the pack are left alone (operators' own scripts)."""
    report = ImportReport()
    # Reading files (and images) blocks: off the event loop.
    for entry in await asyncio.to_thread(read_pack, paths, images=images):
        _, outcome = await save_content(
            session=session,
            key=entry.key,
            content=entry.content,
            author=author,
            note=f"导入 {entry.source}",
            now=now,
            images=images,
        )
        {
            SaveOutcome.CREATED: report.created,
            SaveOutcome.UPDATED: report.updated,
            SaveOutcome.UNCHANGED: report.unchanged,
        }[outcome].append(entry.key)
    return report


async def export_pack(*, session: AsyncSession, directory: Path) -> list[Path]:
    """Write every script to `directory` as `<category>.yaml`, in the import format."""
    files: dict[Path, str] = {}
    scripts = await list_scripts(session=session)  # ordered by category
    for category, group in groupby(scripts, key=lambda s: s.category):
        stem = _file_stem(category)
        path = directory / f"{stem}.yaml"
        if path in files:  # two categories that differ only in punctuation
            path = directory / f"{stem}_{len(files) + 1}.yaml"
        entries = [to_entry(script.key, script.content) for script in group]
        files[path] = dump(entries, header=EXPORT_HEADER)
    await asyncio.to_thread(_write_files, directory, files)
    return list(files)


def _write_files(directory: Path, files: dict[Path, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")


def _file_stem(category: str) -> str:
    # Categories are operator text: keep letters (Chinese too) and digits, nothing path-like.
    return re.sub(r"[^\w-]+", "_", category).strip("_") or "scripts"


async def seed_default_pack(*, session: AsyncSession, now: datetime) -> ImportReport | None:
    """Import the built-in pack into an empty library (a first run); None when it has scripts,
    which are the operators' and stay as they are."""
    if await session.scalar(select(Script.id).limit(1)) is not None:
        return None
    return await import_pack(session=session, paths=[DEFAULT_PACK], author="首次运行", now=now)


# --- one uploaded pack file (the console's 导入): checked, summarised, then applied ---------

UPLOAD_MAX_BYTES = 512 * 1024
UPLOAD_MAX_SCRIPTS = 300
UPLOAD_TOO_COSTLY = "文件里的模板太多或太复杂，检查没能在限定时间内完成；请拆成几个文件分别导入。"


@dataclass(frozen=True, slots=True)
class PlannedChange:
    key: str
    outcome: SaveOutcome
    diff: str  # unified diff from the current version ("" for a new or unchanged script)


def read_upload(text: str, source: str) -> tuple[list[PackEntry], list[Problem]]:
    """An uploaded file's entries, or what is wrong with it; run in a trial worker (its CPU,
    memory and time are bounded there, and the server's event loop and GIL are not used)."""
    try:
        return _read_upload(text, source), []
    except ScriptValidationError as exc:
        return [], exc.problems
    except MemoryError:
        return [], [Problem(source, UPLOAD_TOO_COSTLY)]


def _read_upload(text: str, source: str) -> list[PackEntry]:
    if len(text.encode()) > UPLOAD_MAX_BYTES:
        raise ScriptValidationError([Problem(source, "文件太大（最多 512 KB）。")])
    try:
        # Anchors and aliases are refused before anything is built: an alias bomb stays text.
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(text, Loader=yaml.SafeLoader)):
            raise ScriptValidationError([Problem(source, "不支持 YAML 锚点和别名（& 与 *）。")])
    except yaml.YAMLError:
        pass  # load_entries says where the YAML is broken
    entries = [PackEntry(k, c, source) for k, c in load_entries(text, source=source)]
    if len(entries) > UPLOAD_MAX_SCRIPTS:
        problem = Problem(source, f"一次最多导入 {UPLOAD_MAX_SCRIPTS} 条话术，请拆成几个文件。")
        raise ScriptValidationError([problem])
    problems = _duplicate_problems(entries)
    for entry in entries:
        found = find_problems(entry.content, key=entry.key)
        problems += [Problem(f"{entry.key}.{p.field}", p.message) for p in found]
    if problems:
        raise ScriptValidationError(problems)
    return entries


async def checked_upload(*, text: str, source: str, trials: TrialPool) -> list[PackEntry]:
    """The file's entries, checked in a trial worker; ScriptValidationError otherwise."""
    try:
        entries, problems = await trials.run(read_upload, text, source)
    except TemplateLimitError:
        raise ScriptValidationError([Problem(source, UPLOAD_TOO_COSTLY)]) from None
    if problems:
        raise ScriptValidationError(problems)
    return entries


async def plan_upload(
    *, session: AsyncSession, text: str, source: str, trials: TrialPool
) -> list[PlannedChange]:
    """What importing `text` would change, script by script; nothing is written.
    ScriptValidationError lists every problem of the file."""
    entries = await checked_upload(text=text, source=source, trials=trials)
    current = {s.key: s for s in await list_scripts(session=session)}
    planned = []
    for entry in entries:
        script = current.get(entry.key)
        if script is None:
            planned.append(PlannedChange(entry.key, SaveOutcome.CREATED, ""))
        elif script.content == entry.content.normalized():
            planned.append(PlannedChange(entry.key, SaveOutcome.UNCHANGED, ""))
        else:
            old, new = dump_content(script.content), dump_content(entry.content.normalized())
            diff = difflib.unified_diff(
                old.splitlines(), new.splitlines(), "当前版本", "导入后", lineterm=""
            )
            planned.append(PlannedChange(entry.key, SaveOutcome.UPDATED, "\n".join(diff)))
    return planned


async def import_upload(
    *,
    session: AsyncSession,
    text: str,
    source: str,
    actor: Actor,
    now: datetime,
    trials: TrialPool,
) -> ImportReport:
    """Import `text` as `import_pack` does a file (all or nothing), each change audited."""
    report = ImportReport()
    for entry in await checked_upload(text=text, source=source, trials=trials):
        script, outcome = await save_content(
            session=session,
            key=entry.key,
            content=entry.content,
            author=actor.name,
            note=f"导入 {source}",
            now=now,
            checked=True,  # checked_upload's worker ran find_problems on every entry
        )
        {
            SaveOutcome.CREATED: report.created,
            SaveOutcome.UPDATED: report.updated,
            SaveOutcome.UNCHANGED: report.unchanged,
        }[outcome].append(entry.key)
        if outcome != SaveOutcome.UNCHANGED:
            after = snapshot(script)
            await AUDIT.record(
                "import", entry.key, session=session, actor=actor, now=now, after=after
            )
    return report


async def export_text(*, session: AsyncSession) -> str:
    """The whole library as one pack file, in the import format."""
    scripts = await list_scripts(session=session)
    return dump([to_entry(s.key, s.content) for s in scripts], header=EXPORT_HEADER)
