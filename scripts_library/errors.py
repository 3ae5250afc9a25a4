"""The script library's errors; the admin API maps them to HTTP answers.

CampBotError
├── ScriptValidationError   422: the content is refused; `problems` name each field
├── ScriptNotFoundError     404: no script (or no such version) under that key
├── ScriptExistsError       409: create with a key already taken
└── RenderError             the template failed with the given values (a missing variable)
    └── TemplateLimitError  the template crossed a bound of the sandbox (bounds.py names them)
        └── TemplateBudgetError  …by looping or computing too long: the same source is refused
                                 at once for a while (render.py), so a template that is sent to
                                 many people costs the server that time once
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.errors import CampBotError


@dataclass(frozen=True, slots=True)
class Problem:
    field: str  # "body", "title", "attachments[0].title", "schedule.time", …
    message: str  # Chinese, names the problem and how to fix it


class ScriptValidationError(CampBotError):
    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("；".join(f"{p.field}：{p.message}" for p in self.problems))

    def prefixed(self, prefix: str) -> ScriptValidationError:
        """The same problems with fields under `prefix` (a file and key in a content pack)."""
        return ScriptValidationError(
            Problem(f"{prefix}.{p.field}", p.message) for p in self.problems
        )


class ScriptNotFoundError(CampBotError):
    def __init__(self, key: str, version: int | None = None) -> None:
        what = f"话术「{key}」" if version is None else f"话术「{key}」的第 {version} 版"
        super().__init__(f"找不到{what}。")
        self.key, self.version = key, version


class ScriptExistsError(CampBotError):
    def __init__(self, key: str) -> None:
        super().__init__(f"话术 key「{key}」已存在，请换一个或直接修改它。")
        self.key = key


class RenderError(CampBotError):
    """Rendering failed; the message is Chinese and says which variable or construct."""


class TemplateLimitError(RenderError):
    """The template would build, nest or output more than the sandbox allows; the message
    names the bound in Chinese."""


class TemplateBudgetError(TemplateLimitError):
    """The template loops or computes past its budget."""
