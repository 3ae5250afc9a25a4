"""The content pack's YAML form of a script, both ways (also the text that diffs compare).

scripts:
  - key: day1_todolist
    title: 第 1 天 今日任务
    category: daily
    msgtype: text
    description: 开营第一天早上发到各群的任务清单
    schedule: {type: cohort_day, day: 1, time: '08:00', target: {type: cohort_groups}}
    body: |
      …the template…
    attachments: []   # news: [{title, description, url, picurl}]; image: [{path} | {url}]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from scripts_library.errors import Problem, ScriptValidationError
from scripts_library.models import ScriptContent

REQUIRED = ("key", "title", "category", "msgtype")
TEXT_FIELDS = ("key", "title", "category", "msgtype", "description", "group_delivery", "body")
FIELDS = (*TEXT_FIELDS, "schedule", "attachments")


class _FlowDict(dict[str, Any]):
    """Written on one line: a schedule reads best that way."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # indent list items, as the pack files do


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None  # bodies stay readable as blocks
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _flow(dumper: yaml.SafeDumper, value: _FlowDict) -> yaml.MappingNode:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value, flow_style=True)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(_FlowDict, _flow)


def to_entry(key: str, content: ScriptContent) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key": key,
        "title": content.title,
        "category": content.category,
        "msgtype": content.msgtype,
    }
    if content.description:
        entry["description"] = content.description
    if content.group_delivery != "auto":
        entry["group_delivery"] = content.group_delivery
    entry["schedule"] = _flow_copy(content.schedule_hint) if content.schedule_hint else None
    entry["body"] = content.body
    if content.attachments:
        entry["attachments"] = [dict(a) for a in content.attachments]
    return entry


def _flow_copy(value: Mapping[str, Any]) -> _FlowDict:
    return _FlowDict({k: _flow_copy(v) if isinstance(v, Mapping) else v for k, v in value.items()})


def dump(entries: Iterable[dict[str, Any]], *, header: str = "") -> str:
    text = yaml.dump(
        {"scripts": list(entries)},
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        width=1000,  # never fold a long line of Chinese text
        indent=2,
    )
    return header + text


def dump_content(content: ScriptContent) -> str:
    """One version as text, for unified diffs."""
    entry = to_entry("", content)
    del entry["key"]
    return yaml.dump(entry, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=1000)


def load_entries(text: str, *, source: str) -> list[tuple[str, ScriptContent]]:
    """The (key, content) pairs of one pack file; ScriptValidationError names each problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"第 {mark.line + 1} 行" if mark is not None else ""
        raise ScriptValidationError([Problem(source, f"YAML 格式错误{where}：{exc}")]) from None
    if not isinstance(data, Mapping) or not isinstance(data.get("scripts"), list):
        raise ScriptValidationError([Problem(source, "文件顶层需要 scripts: 列表。")])
    entries, problems = [], []
    for index, raw in enumerate(data["scripts"]):
        try:
            entries.append(from_entry(raw))
        except ScriptValidationError as exc:
            name = raw.get("key") if isinstance(raw, Mapping) else None
            problems += exc.prefixed(f"{source}:{name or f'scripts[{index}]'}").problems
    if problems:
        raise ScriptValidationError(problems)
    return entries


def from_entry(raw: Any) -> tuple[str, ScriptContent]:
    if not isinstance(raw, Mapping):
        raise ScriptValidationError([Problem("script", "每条话术必须是一个对象。")])
    problems = [Problem(name, "缺少这个字段。") for name in REQUIRED if name not in raw]
    problems += [
        Problem(name, f"不认识的字段（可用：{'、'.join(FIELDS)}）。")
        for name in raw
        if name not in FIELDS
    ]
    problems += [
        Problem(name, "必须是文字（时间等请加引号）。")
        for name in TEXT_FIELDS
        if name in raw and not isinstance(raw[name], str)
    ]
    attachments = raw.get("attachments") or []
    if not isinstance(attachments, list):
        problems.append(Problem("attachments", "必须是列表。"))
    if problems:
        raise ScriptValidationError(problems)
    content = ScriptContent(
        title=raw["title"],
        category=raw["category"],
        msgtype=raw["msgtype"],
        body=raw.get("body", ""),
        attachments=tuple(attachments),
        schedule_hint=raw.get("schedule"),
        description=raw.get("description", ""),
        group_delivery=raw.get("group_delivery", "auto"),
    )
    return raw["key"], content.normalized()
