"""Fault injection: answers and misbehaviours the sandbox serves instead of the normal one."""

from __future__ import annotations

from dataclasses import dataclass, field

CGI_PREFIX = "/cgi-bin/"


def cgi_path(path: str) -> str:
    """Accept "message/send", "/message/send" or "/cgi-bin/message/send"."""
    bare = path.split("?", 1)[0]
    if bare.startswith(CGI_PREFIX):
        return bare
    return CGI_PREFIX + bare.lstrip("/")


@dataclass(slots=True)
class FailRule:
    errcode: int
    errmsg: str | None
    remaining: int | None  # None: forever


@dataclass(slots=True)
class Faults:
    failures: dict[str, list[FailRule]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    server_errors: dict[str, list[int]] = field(default_factory=dict)

    def add_failure(
        self, path: str, errcode: int, *, times: int | None, errmsg: str | None
    ) -> None:
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for forever)")
        self.failures.setdefault(cgi_path(path), []).append(FailRule(errcode, errmsg, times))

    def take_failure(self, path: str) -> FailRule | None:
        rules = self.failures.get(path)
        if not rules:
            return None
        rule = rules[0]
        if rule.remaining is not None:
            rule.remaining -= 1
            if rule.remaining == 0:
                rules.pop(0)
        return rule

    def add_drops(self, path: str, times: int) -> None:
        key = cgi_path(path)
        self.drops[key] = self.drops.get(key, 0) + times

    def take_drop(self, path: str) -> bool:
        left = self.drops.get(path, 0)
        if left < 1:
            return False
        self.drops[path] = left - 1
        return True

    def add_server_errors(self, path: str, times: int, status: int) -> None:
        if not 500 <= status <= 599:
            raise ValueError("status must be a 5xx")
        self.server_errors.setdefault(cgi_path(path), []).extend([status] * times)

    def take_server_error(self, path: str) -> int | None:
        pending = self.server_errors.get(path)
        return pending.pop(0) if pending else None

    def delay_for(self, path: str) -> float:
        return self.delays.get(path, 0.0)

    def clear(self) -> None:
        self.failures.clear()
        self.delays.clear()
        self.drops.clear()
        self.server_errors.clear()
