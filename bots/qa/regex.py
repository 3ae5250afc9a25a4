"""Regex rules of the Q&A: compiled for RE2, refused at save when they cannot be, and the
literals they need (the matcher's prefilter).

Python's `re` backtracks: `a.*b.*c.*d.*e` takes seconds on a few hundred characters and
cannot be interrupted, stalling every handler of the process. RE2 matches in time linear in
the text whatever the pattern, so no shape of regex can do that.

Operators write the syntax they always did (Python's `re`, the stored rules' dialect), and
it keeps its meaning: a pattern is accepted only if Python's `re` parses it, it uses none of
what RE2 lacks (each refused with a Chinese reason: backreferences, lookaround, possessive
repeats, atomic groups, conditionals, and \\b/\\B, which RE2 only knows for ASCII words),
and RE2 compiles its translation (`to_re2`: Python's Unicode \\w \\d \\s spelt as Unicode
classes — RE2's own are ASCII —, \\uXXXX as \\x{XXXX}, \\Z as \\z) within a memory and
program size that keep a compile and a search over MAX_TEXT characters short.
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Any

# The parser behind `re`, and google-re2 (no type stubs for either).
re2: Any = importlib.import_module("re2")
C: Any = importlib.import_module("re._constants")
sre_parser: Any = importlib.import_module("re._parser")

REGEX_FLAGS = re.IGNORECASE
MAX_TEXT = 2048  # characters of a question the matchers see (WeCom texts are ≤ 2048 bytes)
MAX_PATTERN = 200  # characters (the admin API's limit too)
# RE2 instructions (\w alone, a Unicode class, is ~1,350). A search is linear in the text,
# its constant grows with the program: at this size the worst we built takes tens of ms on
# MAX_TEXT random characters, and matching runs off the event loop (`bots.qa.matching.match`).
MAX_PROGRAM = 10_000
MAX_MEM = 1 << 20  # bytes per regex: a huge pattern fails to compile in ms, not after 8 MiB


class UnsafeRegex(ValueError):
    """Why a regex is refused, in Chinese for the operator."""


def _options() -> Any:
    options = re2.Options()
    options.encoding = re2.Options.Encoding.UTF8
    options.case_sensitive = False  # as re.IGNORECASE
    options.longest_match = False  # leftmost-first, as Python
    options.never_capture = True  # only whether it matches counts
    options.max_mem = MAX_MEM
    options.log_errors = False
    return options


OPTIONS = _options()

# --- Python's syntax, RE2's engine ----------------------------------------------------------

_LACKING = {
    C.GROUPREF: "不支持反向引用（\\1、(?P=name)）",
    C.ASSERT: "不支持前瞻、后顾断言（(?=…)、(?<=…)）",
    C.ASSERT_NOT: "不支持否定的前瞻、后顾断言（(?!…)、(?<!…)）",
    C.POSSESSIVE_REPEAT: "不支持占有量词（a*+、a++、a?+、a{1,3}+）",
    C.ATOMIC_GROUP: "不支持原子分组 (?>…)",
}
_BOUNDARY = (
    "不支持单词边界 \\b、\\B（新引擎只认英文单词的边界，中文里含义会变）；"
    "请去掉它，或用 \\s、^、$ 表示边界。"
)
_FIX = "：这类写法可能让匹配变得极慢，已不再支持；请改写，或改用关键词规则。"
_CONDITIONAL = "不支持条件分组 (?(1)…|…)" + _FIX
_AMBIGUOUS = (
    "字符集 […] 开头的 [，以及其中连写的 --、&&、~~、||，不同的正则引擎理解不同；"
    "请在它们前面加反斜杠转义。"
)

# Python's Unicode classes as RE2 spells them (RE2's \w \d \s are ASCII only).
_WORD, _SPACE = r"\p{L}\p{N}_", r"\t-\r\x1c-\x20\x85\p{Z}"
_OUTSIDE = {
    "w": f"[{_WORD}]", "W": f"[^{_WORD}]", "d": r"\p{Nd}", "D": r"\P{Nd}",
    "s": f"[{_SPACE}]", "S": f"[^{_SPACE}]", "Z": r"\z",
}  # fmt: skip
_INSIDE = {"w": _WORD, "d": r"\p{Nd}", "D": r"\P{Nd}", "s": _SPACE, "b": r"\x08"}
_EMPTY_MIN = re.compile(r"\{,\d*\}")  # Python's {,n}; RE2 reads it as text


def parse(pattern: str) -> list[Any]:
    """Python's parse tree (what the pattern means); UnsafeRegex (with the parser's reason)
    if Python's `re` refuses it."""
    try:
        return list(sre_parser.parse(pattern, REGEX_FLAGS))
    except re.error as exc:
        raise UnsafeRegex(f"正则表达式写法有误：{exc}") from None
    except (RecursionError, OverflowError):
        raise UnsafeRegex("正则表达式嵌套太深或数字太大。") from None


def _children(op: Any, av: Any) -> Iterator[list[Any]]:
    """The sub-patterns of what `_check_features` lets through."""
    if op == C.SUBPATTERN:
        yield list(av[3])
    elif op == C.BRANCH:
        yield from (list(b) for b in av[1])
    elif op in (C.MAX_REPEAT, C.MIN_REPEAT):
        yield list(av[2])


def _walk(nodes: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    for op, av in nodes:
        yield op, av
        for child in _children(op, av):
            yield from _walk(child)


def _check_features(nodes: list[Any]) -> None:
    for op, av in _walk(nodes):
        if op in _LACKING:
            raise UnsafeRegex(_LACKING[op] + _FIX)
        if op == C.AT and av in (C.AT_BOUNDARY, C.AT_NON_BOUNDARY):
            raise UnsafeRegex(_BOUNDARY)


def to_re2(pattern: str) -> str:
    """`pattern` in RE2's syntax, with the meaning Python's `re` gives it (if Python parses
    it at all: `parse`). Refuses (UnsafeRegex) what Python itself warns may change meaning
    (a set opening with `[`, `--` `&&` `~~` `||` in one: RE2 reads `[[:alpha:]]` as a POSIX
    class) and conditionals, whose group names Python warns about before refusing them."""
    out: list[str] = []
    i, in_class, first_item = 0, False, 0
    while i < len(pattern):
        c, following = pattern[i], pattern[i + 1 : i + 2]
        if c == "\\" and following:
            out.append(_escape(pattern, i, in_class))
            i += 2 + {"u": 4, "U": 8}.get(following, 0)
            continue
        if in_class:
            if (c in "-&~|" and following == c) or (c == "[" and i == first_item):
                raise UnsafeRegex(_AMBIGUOUS)
            in_class = not (c == "]" and i > first_item)  # a `]` first is a member
            c = "\\[" if c == "[" else c  # RE2 would read [: as a POSIX class
        elif c == "[":
            first_item = i + 2 if pattern.startswith("[^", i) else i + 1
            out.append(pattern[i:first_item])
            i, in_class = first_item, True
            continue
        elif c == "(" and pattern.startswith("?(", i + 1):
            raise UnsafeRegex(_CONDITIONAL)
        elif c == "{" and (empty := _EMPTY_MIN.match(pattern, i)):
            out.append("{0" + empty.group()[1:])
            i = empty.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _escape(pattern: str, i: int, in_class: bool) -> str:
    e = pattern[i + 1]
    if e in "uU":
        return "\\x{" + pattern[i + 2 : i + (6 if e == "u" else 10)] + "}"
    table = _INSIDE if in_class else _OUTSIDE
    if e in table:
        return table[e]
    if in_class and e in "WS":
        raise UnsafeRegex(
            "字符集 […] 里不支持 \\W、\\S；请改写，例如任意字符（含换行）写成 (?s:.)。"
        )
    return e if not e.isascii() else "\\" + e  # `\？`: RE2 escapes only ASCII


def compile_regex(pattern: str) -> Any:
    """The RE2 regex that tells whether an operator's pattern occurs in a text (its `search`
    is truthy or None); UnsafeRegex (Chinese reason) if the pattern is refused.

    (?U) swaps greedy and lazy repeats: whether a match exists is the same, but a lazy one
    ends early, so RE2 scans less to report it."""
    if len(pattern) > MAX_PATTERN:
        raise UnsafeRegex(f"正则最多 {MAX_PATTERN} 个字符，现在是 {len(pattern)} 个。")
    translated = to_re2(pattern)  # first: it refuses what Python's parser would warn about
    _check_features(parse(pattern))
    try:
        compiled = re2.compile("(?U)" + translated, OPTIONS)
    except re2.error as exc:
        raise UnsafeRegex(_re2_reason(exc)) from None
    except UnicodeEncodeError:
        raise UnsafeRegex("正则里有无法识别的字符（如单独的代理字符）。") from None
    if compiled.programsize > MAX_PROGRAM:
        raise UnsafeRegex(_too_big())
    return compiled


def _re2_reason(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else ""
    message = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    if "repetition size" in message:
        return "重复次数太大：{n,m} 最多 1000，嵌套的重复次数相乘也不能超过 1000。"
    if "too large" in message:
        return _too_big()
    return f"正则引擎（RE2）不支持这种写法：{message}。请改写，或改用关键词规则。"


def _too_big() -> str:
    return "正则太复杂（展开后太大，如 \\w{100}）：请减少重复次数，或改用关键词规则。"


# --- required literals (the prefilter) ------------------------------------------------------


def _best(options: list[frozenset[str]]) -> frozenset[str] | None:
    """The most selective any-of set: longest shortest literal, then fewest alternatives."""
    usable = [o for o in options if o and all(o)]
    if not usable:
        return None
    return max(usable, key=lambda o: (min(len(s) for s in o), -len(o)))


def _required(nodes: list[Any], norm: Any, depth: int = 0) -> frozenset[str] | None:
    """A set of normalized literals one of which occurs in every match; None if none found."""
    options: list[frozenset[str]] = []
    run: list[str] = []

    def close_run() -> None:
        literal = norm("".join(run))
        if literal:
            options.append(frozenset({literal}))
        run.clear()

    for op, av in nodes:
        if op == C.LITERAL:
            run.append(chr(av))
            continue
        close_run()
        if depth > 30:
            continue
        if op == C.SUBPATTERN:
            found = _required(list(av[3]), norm, depth + 1)
        elif op in (C.MAX_REPEAT, C.MIN_REPEAT) and av[0] >= 1:
            found = _required(list(av[2]), norm, depth + 1)
        elif op == C.BRANCH:
            found = _any_of([_required(list(b), norm, depth + 1) for b in av[1]])
        else:
            found = None
        if found is not None:
            options.append(found)
    close_run()
    return _best(options)


def _any_of(branches: list[frozenset[str] | None]) -> frozenset[str] | None:
    if any(b is None for b in branches):
        return None
    return frozenset().union(*(b for b in branches if b is not None))


def required_literals(pattern: str, norm: Any) -> frozenset[str] | None:
    """Normalized literals (by `norm`, the matcher's normalization) one of which must occur in
    any text the regex matches; None when the regex has no such literal (it always runs).
    Read from Python's parse of a pattern `compile_regex` took (`to_re2` keeps its meaning)."""
    try:
        nodes = list(sre_parser.parse(pattern, REGEX_FLAGS))
    except (re.error, RecursionError, OverflowError):
        return None
    return _required(nodes, norm)


def nfkc_lower(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()
