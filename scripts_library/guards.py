"""The checks the bounded sandbox (`sandbox.py`) runs before an operator, a method of a string
or number, or a filter does its work: each estimates the size of what it would build and
refuses past MAX_TEXT (or MAX_INT_BITS), so nothing oversized is ever allocated."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

from scripts_library.bounds import MAX_INT_BITS, check_built, check_size, measure, spend
from scripts_library.errors import TemplateLimitError

MAX_JSON_INDENT = 8
# A printf-style conversion: %[(key)][flags][width][.precision][length]type
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)


# Operators ---------------------------------------------------------------------------------


def guard_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "**":
        _guard_power(left, right)
    elif operator == "*":
        _guard_product(left, right)
    elif operator == "+" and _is_sequence(left) and _is_sequence(right):
        check_size(measure(left) + measure(right))
    elif operator == "%" and isinstance(left, str):
        check_percent(left, right)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def _guard_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return  # float powers overflow at once (an error); negative ones give floats
    if abs(base) > 1 and base.bit_length() * exponent > MAX_INT_BITS:
        raise TemplateLimitError(f"乘方结果太大：超过上限（{MAX_INT_BITS} 位二进制）")


def _guard_product(left: Any, right: Any) -> None:
    for seq, times in ((left, right), (right, left)):
        if _is_sequence(seq) and isinstance(times, int):
            each = len(seq) if isinstance(seq, str | bytes) else measure(seq) - 1
            check_size(each * max(times, 0))
            return
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise TemplateLimitError(f"数字太大：乘积超过上限（{MAX_INT_BITS} 位二进制）")


def check_percent(template: str, values: Any) -> None:
    """`template % values` stays within MAX_TEXT (printf-style widths are counted too)."""
    conversions = [c for c in _PERCENT.findall(template) if c[2] != "%"]
    size = len(template)
    for width, precision, _ in conversions:
        if "*" in (width, precision):
            raise TemplateLimitError("格式化时不能用 * 指定宽度，请直接写数字")
        size += max(int(width or 0), int(precision or 0))
        check_size(size)
    if isinstance(values, tuple):
        size += measure(values)
    elif isinstance(values, Mapping):  # %(name)s: each conversion may print the largest value
        size += len(conversions) * max((measure(v) for v in values.values()), default=0)
    else:
        size += measure(values)
    check_size(size)


# Methods of strings and numbers ----------------------------------------------------------

Args = tuple[Any, ...]
Kwargs = dict[str, Any]


def guard_method(obj: Any, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if isinstance(owner, str | bytes):
        guard = _TEXT_METHODS.get(name)
        if guard is not None:
            return guard(owner, args, kwargs)
    elif isinstance(owner, int) and name == "to_bytes":
        _check_count(args[0] if args else kwargs.get("length", 1))
    return args, kwargs


def _check_count(value: Any) -> None:
    """A width, length or count argument: Python refuses non-numbers itself."""
    if isinstance(value, int):
        check_size(value)


def _pad(owner: str | bytes, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    _check_count(args[0] if args else None)
    return args, kwargs


def _expandtabs(owner: str | bytes, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    size = args[0] if args else kwargs.get("tabsize", 8)
    if isinstance(size, int):
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        check_size(len(owner) + tabs * max(size, 0))
    return args, kwargs


def _replace(owner: str | bytes, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    if len(args) >= 2:
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        check_replace(owner, args[0], args[1], count)
    return args, kwargs


def check_replace(text: Any, old: Any, new: Any, count: Any) -> None:
    if not (isinstance(text, str | bytes) and type(old) is type(new) and type(old) is type(text)):
        return  # Python refuses mixed types itself
    found: int = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    check_size(len(text) + found * (len(new) - len(old)))


def _join(owner: str | bytes, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    if len(args) != 1:
        return args, kwargs
    items = list(args[0])
    _check_joined(items, len(owner))
    return (items,), kwargs


def _check_joined(items: list[Any], separator: int) -> None:
    spend(len(items))
    size = separator * max(len(items) - 1, 0)
    check_size(size)
    check_size(size + measure(items))


def _translate(owner: str | bytes, args: Args, kwargs: Kwargs) -> tuple[Args, Kwargs]:
    table = args[0] if args else None
    if isinstance(table, Mapping):
        widest = max((len(v) for v in table.values() if isinstance(v, str | bytes)), default=1)
        check_size(len(owner) * max(widest, 1))
    return args, kwargs


_TEXT_METHODS: dict[str, Callable[[str | bytes, Args, Kwargs], tuple[Args, Kwargs]]] = {
    "ljust": _pad,
    "rjust": _pad,
    "center": _pad,
    "zfill": _pad,
    "expandtabs": _expandtabs,
    "replace": _replace,
    "join": _join,
    "translate": _translate,
}


# Filters ----------------------------------------------------------------------------------

Bound = inspect.BoundArguments


def bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    guard = _FILTER_GUARDS.get(name)
    signature = inspect.signature(func)  # the plain filter's, for async-ready ones too
    # Async-ready filters take the eval context first, although the plain one does not.
    leading = int(_passes_context(func) and not _passes_context(inspect.unwrap(func)))

    @wraps(func)  # keeps Jinja2's pass_context / pass_environment marks
    def bounded(*args: Any, **kwargs: Any) -> Any:
        spend()
        if guard is not None:
            try:
                bound = signature.bind(*args[leading:], **kwargs)
            except TypeError:
                pass  # the filter itself says what is wrong with the arguments
            else:
                bound.apply_defaults()
                guard(bound)
                args, kwargs = (*args[:leading], *bound.args), bound.kwargs
        return check_built(func(*args, **kwargs))

    return bounded


def _passes_context(func: Callable[..., Any]) -> bool:
    return getattr(func, "jinja_pass_arg", None) is not None


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _guard_indent(bound: Bound) -> None:
    text, width = _text_of(bound.arguments["s"]), bound.arguments["width"]
    step = len(width) if isinstance(width, str) else width
    if isinstance(step, int):
        check_size(step)
        check_size(len(text) + (text.count("\n") + 1) * step)


def _guard_wordwrap(bound: Bound) -> None:
    text, width = _text_of(bound.arguments["s"]), bound.arguments["width"]
    wrap = bound.arguments["wrapstring"] or "\n"
    if isinstance(width, int) and width > 0:
        lines = len(text) // width + text.count("\n") + 1
        check_size(len(text) + lines * len(wrap))


def _guard_replace(bound: Bound) -> None:
    arguments = bound.arguments
    check_replace(
        _text_of(arguments["s"]), arguments["old"], arguments["new"], arguments["count"] or -1
    )


def _guard_format(bound: Bound) -> None:
    values = bound.arguments["kwargs"] or bound.arguments["args"]
    check_percent(_text_of(bound.arguments["value"]), values)


def _guard_join(bound: Bound) -> None:
    items = list(bound.arguments["value"])
    separator = bound.arguments["d"]
    _check_joined(items, len(separator) if isinstance(separator, str) else 0)
    bound.arguments["value"] = items


def _guard_sum(bound: Bound) -> None:
    if not isinstance(bound.arguments["start"], int | float):
        raise TemplateLimitError("sum 只能对数字求和")


def _guard_tojson(bound: Bound) -> None:
    indent = bound.arguments["indent"]
    if isinstance(indent, int) and indent > MAX_JSON_INDENT:
        raise TemplateLimitError(f"tojson 的缩进不能超过 {MAX_JSON_INDENT}")


_FILTER_GUARDS: dict[str, Callable[[Bound], None]] = {
    "center": lambda bound: _check_count(bound.arguments["width"]),
    "indent": _guard_indent,
    "wordwrap": _guard_wordwrap,
    "replace": _guard_replace,
    "format": _guard_format,
    "join": _guard_join,
    "batch": lambda bound: _check_count(bound.arguments["linecount"]),
    "slice": lambda bound: _check_count(bound.arguments["slices"]),
    "sum": _guard_sum,
    "tojson": _guard_tojson,
}
