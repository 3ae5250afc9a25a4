"""The bounds every script render keeps, and the budget one render spends.

Scripts are rendered inside the server when they are sent (pushes, welcome, 喜报, Q&A), so
a template may only build so much and work so long, whatever values it is given. Each bound
is checked before the work it guards is done (`sandbox.py` says where), and a template that
crosses one fails with a TemplateLimitError naming it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from jinja2.utils import Namespace

from scripts_library.errors import TemplateBudgetError, TemplateLimitError

MAX_RANGE = 1_000  # numbers one range() may give
MAX_LOOP_ITERATIONS = 10_000  # loop turns of one render, all loops together
MAX_DEPTH = 20  # macro calls (and recursive loops) inside one another
# The longest text one render may build or output, and the most items a list or mapping may
# hold (strings counted by their length): four times the largest channel message (4096 bytes).
MAX_TEXT = 16_384
MAX_INT_BITS = 4_096  # about 1233 decimal digits
MAX_NODES = 500  # syntax nodes of one script's templates: bounds the time to compile them
MAX_CPU_SECONDS = 0.05  # processor time of one render
_CHECK_EVERY = 256  # work units between two looks at the clock

NS_ATTRS = "_Namespace__attrs"


def too_long(size: int) -> TemplateLimitError:
    return TemplateLimitError(f"模板生成的内容超过上限（{MAX_TEXT} 个字符或项，现在 {size}）")


def check_size(size: int) -> None:
    if size > MAX_TEXT:
        raise too_long(size)


def check_int(value: int) -> None:
    if value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError(
            f"数字太大：超过上限（{MAX_INT_BITS} 位二进制，约 1233 位十进制）"
        )


def measure(value: object, limit: int = MAX_TEXT) -> int:
    """About how many characters `value` prints as: a string its length, a list or mapping
    one per item plus its items' (an item held twice counts twice, as printing repeats it).
    Stops counting once past `limit`; the steps taken are charged to the render's budget."""
    total, steps, stack = 0, 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        steps += 1
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, bool | float) or item is None:
            total += 1
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, dict):
            total += 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 1
            stack.extend(item)
        elif isinstance(item, Namespace):
            total += 1
            stack.append(object.__getattribute__(item, NS_ATTRS))
        else:
            total += 1  # a variable's own object (an entry of the leaderboard): prints short
    spend(steps)
    return total


def check_built(value: object) -> object:
    """`value` if the template may hold it (a string, number or container within bounds)."""
    if isinstance(value, str | bytes):
        check_size(len(value))
    elif isinstance(value, int):
        check_int(value)
    elif isinstance(value, list | tuple | dict | set | frozenset | Namespace):
        check_size(measure(value))
    return value


@dataclass(slots=True)
class Budget:
    """What one render may still spend: loop turns, nesting, and processor time."""

    deadline: float = field(default_factory=lambda: time.thread_time() + MAX_CPU_SECONDS)
    iterations: int = 0
    depth: int = 0
    units: int = 0
    next_check: int = _CHECK_EVERY

    def spend(self, units: int = 1) -> None:
        self.units += units
        if self.units >= self.next_check:
            self.next_check = self.units + _CHECK_EVERY
            if time.thread_time() > self.deadline:
                raise TemplateBudgetError(
                    f"模板渲染超时：计算时间超过上限（{int(MAX_CPU_SECONDS * 1000)} 毫秒），"
                    "请简化模板"
                )

    def turn(self) -> None:
        self.iterations += 1
        if self.iterations > MAX_LOOP_ITERATIONS:
            raise TemplateBudgetError(f"模板循环次数超过上限（{MAX_LOOP_ITERATIONS} 次）")
        self.spend()

    @contextmanager
    def nested(self) -> Iterator[None]:
        if self.depth >= MAX_DEPTH:
            raise TemplateLimitError(f"宏（macro）或递归循环嵌套超过上限（{MAX_DEPTH} 层）")
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


_CURRENT: ContextVar[Budget | None] = ContextVar("render_budget", default=None)


@contextmanager
def budget() -> Iterator[Budget]:
    """A fresh budget for the render run inside the block."""
    fresh = Budget()
    token = _CURRENT.set(fresh)
    try:
        yield fresh
    finally:
        _CURRENT.reset(token)


def spend(units: int = 1) -> None:
    """Charge the current render (nothing outside one: Jinja folding constants at compile)."""
    current = _CURRENT.get()
    if current is not None:
        current.spend(units)


def turn() -> None:
    current = _CURRENT.get()
    if current is not None:
        current.turn()


@contextmanager
def nested() -> Iterator[None]:
    current = _CURRENT.get()
    if current is None:
        yield
        return
    with current.nested():
        yield
