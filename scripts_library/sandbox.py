"""The Jinja2 sandbox scripts render in, with the bounds of `bounds.py` checked before the work
they guard: a string is never padded, repeated, replaced, joined or formatted past MAX_TEXT,
a number never raised past MAX_INT_BITS, no list, tuple or mapping built past MAX_TEXT items,
no range past MAX_RANGE, no render's loops past MAX_LOOP_ITERATIONS turns nor its macros
past MAX_DEPTH levels, and no output (nor a macro's, nor a `{% set %}` block's) past MAX_TEXT.

Jinja2's own sandbox already refuses underscore attributes and mutating calls. Its extension
points do the rest: `intercepted_binops`/`call_binop`, `call`, `getattr`/`getitem`,
`wrap_str_format`, the filters table, `concat` (which joins every output buffer), and the
code generator, which here reports each loop turn and checks every list, tuple and mapping
a template writes out and every `~`. What operators, methods and filters are checked for
before they run is in `guards.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from markupsafe import Markup

from scripts_library.bounds import MAX_RANGE, check_built, check_size, measure, nested, spend, turn
from scripts_library.errors import TemplateLimitError
from scripts_library.guards import bounded_filter, guard_binop, guard_method

_DIGITS = re.compile(r"\d+")


class _CodeGenerator(CodeGenerator):
    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # Every turn first reports to the render's budget (MAX_LOOP_ITERATIONS).
        if not (node.body and _is_turn(node.body[0])):
            call = nodes.Call(nodes.EnvironmentAttribute("loop_turn"), [], [], None, None)
            node.body = [nodes.ExprStmt(call, lineno=node.lineno), *node.body]
        super().visit_For(node, frame)

    def visit_ExprStmt(self, node: nodes.ExprStmt, frame: Frame) -> None:
        if _is_turn(node):
            # Called directly: through the sandbox's `call` a turn cost ~3 µs, so a slow
            # machine ran out of time (MAX_CPU_SECONDS) before it ran out of turns.
            self.writeline("environment.loop_turn()", node)
        else:
            super().visit_ExprStmt(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.join_text((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._checked(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._checked(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # `{% for a, b in … %}`: a target, not a value
            super().visit_Tuple(node, frame)
        else:
            self._checked(super().visit_Tuple, node, frame)

    def _checked(
        self, visit: Callable[[Any, Frame], None], node: nodes.Node, frame: Frame
    ) -> None:
        self.write("environment.built(")
        visit(node, frame)
        self.write(")")


def _is_turn(node: nodes.Node) -> bool:
    if not isinstance(node, nodes.ExprStmt) or not isinstance(node.node, nodes.Call):
        return False
    target = node.node.node
    return isinstance(target, nodes.EnvironmentAttribute) and target.name == "loop_turn"


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with the bounds of `bounds.py`."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.concat = join_output  # type: ignore[method-assign]
        self.globals["range"] = bounded_range
        self.globals.pop("lipsum", None)  # paragraphs of filler text: no use in a message
        self.filters = {name: bounded_filter(name, f) for name, f in self.filters.items()}

    # Called by the generated code -------------------------------------------------------

    def loop_turn(self) -> None:
        turn()

    def built(self, value: Any) -> Any:
        return check_built(value)

    def join_text(self, parts: Iterable[Any]) -> str:
        return join_output(str(part) for part in parts)

    # Jinja2's sandbox hooks ---------------------------------------------------------------

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        spend()
        guard_binop(operator, left, right)
        return check_built(super().call_binop(context, operator, left, right))

    def getattr(self, obj: Any, attribute: str) -> Any:
        spend()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        spend()
        return super().getitem(obj, argument)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        spend()
        if isinstance(obj, Macro | LoopContext):
            check_size(measure(args) + measure(kwargs))  # what the macro's varargs would hold
            with nested():
                return super().call(context, obj, *args, **kwargs)
        args, kwargs = guard_method(obj, args, kwargs)
        return check_built(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if super().wrap_str_format(value) is None:
            return None  # not a string's format / format_map
        owner: str = value.__self__
        by_name = value.__name__ == "format_map"

        def formatted(*args: Any, **kwargs: Any) -> str:
            formatter: SandboxedFormatter = (
                _BoundedEscapeFormatter(self, escape=owner.escape)
                if isinstance(owner, Markup)
                else _BoundedFormatter(self)
            )
            if not by_name:
                return type(owner)(formatter.vformat(owner, args, kwargs))
            if kwargs or len(args) != 1:
                raise TypeError("format_map() takes exactly one argument")
            return type(owner)(formatter.vformat(owner, (), args[0]))

        return formatted


def join_output(parts: Iterable[str]) -> str:
    """Every output buffer joined (the whole render, a macro's, a `{% set %}` block's),
    stopping as soon as it would pass MAX_TEXT."""
    pieces, size = [], 0
    for part in parts:
        size += len(part)
        check_size(size)
        pieces.append(part)
    spend(len(pieces))
    return "".join(pieces)


def bounded_range(*args: int) -> range:
    numbers = range(*args)
    try:
        count = len(numbers)
    except OverflowError:  # more than the machine can count
        count = MAX_RANGE + 1
    if count > MAX_RANGE:
        raise TemplateLimitError(f"range() 最多生成 {MAX_RANGE} 个数（现在 {count} 个）")
    return numbers


def _check_spec(spec: str) -> None:
    for number in _DIGITS.findall(spec):
        check_size(int(number))


class _BoundedFormatting:
    """str.format with widths bounded and the text written so far counted."""

    written = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_spec(format_spec)
        text = super().format_field(value, format_spec)  # type: ignore[misc]
        self.written += len(text)
        check_size(self.written)
        return text


class _BoundedFormatter(_BoundedFormatting, SandboxedFormatter):
    pass


class _BoundedEscapeFormatter(_BoundedFormatting, SandboxedEscapeFormatter):
    pass
