"""Regex rules of the Q&A: refused at save when they could hang the event loop, and the
literals they need (the matcher's prefilter).

Python's `re` backtracks and cannot be interrupted, so a regex that blows up on one message
would stall every handler of the process. A regex is therefore checked twice when saved:

1. Statically, on its parse tree (`re._parser`), refusing the shapes known to backtrack
   exponentially or with a high polynomial: a variable-length repeat inside another repeat
   (`(a+)+`, `(.*)*`, `(\\d{1,3})+`); a repeat around alternatives that can start with the same
   character or both match nothing (`(a|a)*`, `(ab|a.)+`); two unbounded repeats in a row
   that can eat the same characters (`\\d+\\d+`, `.*.*`). The check is conservative: it may
   refuse a harmless pattern, never with a vague reason.
2. By a timed trial in a separate process (killable, unlike a thread): the regex is searched
   in adversarial texts of MAX_TEXT characters built from its own pieces (each repeat's body
   pumped, then a character that makes the match fail). Over TRIAL_INPUT_S on any of them, or
   no answer within TRIAL_HARD_S, and it is refused. Text is cut to MAX_TEXT before matching,
   so the trial covers the inputs the matcher will see.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# The parser behind `re` (no type stubs): its opcodes and parse trees.
C: Any = importlib.import_module("re._constants")
sre_parser: Any = importlib.import_module("re._parser")

REGEX_FLAGS = re.IGNORECASE
MAX_TEXT = 2048  # WeCom text messages are at most 2048 bytes
TRIAL_INPUT_S = 0.2  # a quadratic search over MAX_TEXT takes ~30 ms; cubic takes seconds
TRIAL_HARD_S = 5.0  # interpreter start + every input
_REPEATS = (C.MAX_REPEAT, C.MIN_REPEAT)


class UnsafeRegex(ValueError):
    """Why a regex is refused, in Chinese for the operator."""


Node = tuple[Any, Any]


def _in_category(char: str, category: str) -> bool:
    negated = category.startswith("NOT_")
    base = category.removeprefix("NOT_")
    if base == "DIGIT":
        found = char.isdecimal()
    elif base == "SPACE":
        found = char.isspace()
    elif base == "WORD":
        found = char.isalnum() or char == "_"
    else:
        return True  # "ANY", or a category we do not model
    return found != negated


# Classes known to share no character (\d ⊂ \w, so \d and \W too).
_DISJOINT = {
    frozenset(pair)
    for pair in [
        ("DIGIT", "SPACE"), ("SPACE", "WORD"), ("DIGIT", "NOT_DIGIT"),
        ("SPACE", "NOT_SPACE"), ("WORD", "NOT_WORD"), ("DIGIT", "NOT_WORD"),
    ]
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class CharSet:
    """Characters an atom may consume: explicit ones, and classes (`DIGIT`, `NOT_SPACE`, …,
    `ANY` for `.` and negated sets)."""

    chars: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()

    def meets(self, other: CharSet) -> bool:
        if self.chars & other.chars:
            return True
        if any(_in_category(c, k) for c in self.chars for k in other.classes):
            return True
        if any(_in_category(c, k) for c in other.chars for k in self.classes):
            return True
        return any(frozenset((a, b)) not in _DISJOINT for a in self.classes for b in other.classes)

    def __or__(self, other: CharSet) -> CharSet:
        return CharSet(self.chars | other.chars, self.classes | other.classes)


ANY = CharSet(classes=frozenset({"ANY"}))


def parse(pattern: str) -> list[Node]:
    """The parse tree; UnsafeRegex (with the compiler's reason) if it does not compile."""
    try:
        re.compile(pattern, REGEX_FLAGS)
        return list(sre_parser.parse(pattern, REGEX_FLAGS))
    except re.error as exc:
        raise UnsafeRegex(f"正则表达式写法有误：{exc}") from None
    except (RecursionError, OverflowError):
        raise UnsafeRegex("正则表达式嵌套太深或数字太大。") from None


# --- static analysis ----------------------------------------------------------------------


def _is_repeat(op: Any, av: Any) -> bool:
    return op in _REPEATS and (av[1] == C.MAXREPEAT or av[1] > 1)


def _variable(av: Any) -> bool:
    return bool(av[0] != av[1])


def _children(op: Any, av: Any) -> Iterator[list[Node]]:
    if op == C.SUBPATTERN:
        yield list(av[3])
    elif op == C.BRANCH:
        yield from (list(b) for b in av[1])
    elif op in (*_REPEATS, C.POSSESSIVE_REPEAT):
        yield list(av[2])
    elif op in (C.ASSERT, C.ASSERT_NOT):
        yield list(av[1])
    elif op == C.ATOMIC_GROUP:
        yield list(av)
    elif op == C.GROUPREF_EXISTS:
        yield list(av[1])
        if av[2] is not None:
            yield list(av[2])


def _walk(nodes: Iterable[Node]) -> Iterator[Node]:
    for op, av in nodes:
        yield op, av
        for child in _children(op, av):
            yield from _walk(child)


def _atom_set(op: Any, av: Any) -> CharSet | None:
    """The characters a single-character atom consumes; None if it is not one."""
    if op == C.LITERAL:
        return CharSet(frozenset({chr(av).lower()}))
    if op == C.NOT_LITERAL or op == C.ANY:
        return ANY
    if op == C.IN:
        chars: set[str] = set()
        classes: set[str] = set()
        for item_op, item_av in av:
            if item_op == C.LITERAL:
                chars.add(chr(item_av).lower())
            elif item_op == C.RANGE and item_av[1] - item_av[0] < 64:
                chars.update(chr(c).lower() for c in range(item_av[0], item_av[1] + 1))
            elif item_op == C.CATEGORY:
                classes.add(str(item_av).removeprefix("CATEGORY_"))
            else:
                return ANY  # a negated set, a wide range
        return CharSet(frozenset(chars), frozenset(classes))
    return None


def _nullable(nodes: list[Node]) -> bool:
    for op, av in nodes:
        if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
            continue
        if op in (*_REPEATS, C.POSSESSIVE_REPEAT) and av[0] == 0:
            continue
        if op == C.SUBPATTERN and _nullable(list(av[3])):
            continue
        if op == C.BRANCH and any(_nullable(list(b)) for b in av[1]):
            continue
        return False
    return True


def _first(nodes: list[Node]) -> CharSet:
    """Characters a match of `nodes` may start with (over-approximated)."""
    found = CharSet()
    for op, av in nodes:
        atom = _atom_set(op, av)
        if atom is not None:
            return found | atom
        if op in (C.AT, C.ASSERT, C.ASSERT_NOT):
            continue
        children = list(_children(op, av))
        if not children:
            return found | ANY  # a backreference: anything
        for child in children:
            found = found | _first(child)
        if not _nullable([(op, av)]):
            return found
    return found


def _consumes(nodes: list[Node]) -> CharSet:
    """Every character `nodes` may consume (over-approximated)."""
    found = CharSet()
    for op, av in _walk(nodes):
        atom = _atom_set(op, av)
        if atom is not None:
            found = found | atom
        elif op in (C.GROUPREF, C.GROUPREF_EXISTS):
            found = found | ANY
    return found


def _overlapping_branch(body: list[Node]) -> bool:
    for op, av in _walk(body):
        if op != C.BRANCH:
            continue
        alternatives = [list(b) for b in av[1]]
        for i, left in enumerate(alternatives):
            for right in alternatives[i + 1 :]:
                if _nullable(left) and _nullable(right):
                    return True
                if _first(left).meets(_first(right)):
                    return True
    return False


def _nested_repeat(body: list[Node]) -> bool:
    return any(_is_repeat(op, av) and _variable(av) for op, av in _walk(body))


def _adjacent_repeats(nodes: list[Node]) -> bool:
    """Two unbounded repeats in one sequence, with only optional things between them,
    that can consume the same characters (`\\d+\\d+`, `.*\\s*.*`)."""
    previous: CharSet | None = None
    for op, av in nodes:
        if op in _REPEATS and av[1] == C.MAXREPEAT:
            eats = _consumes(list(av[2]))
            if previous is not None and previous.meets(eats):
                return True
            previous = eats
        elif not _nullable([(op, av)]):
            previous = None
        for child in _children(op, av):
            if _adjacent_repeats(child):
                return True
    return False


def check_static(nodes: list[Node]) -> None:
    for op, av in _walk(nodes):
        if not _is_repeat(op, av):
            continue
        body = list(av[2])
        if _nested_repeat(body):
            raise UnsafeRegex(
                "正则里有嵌套的重复（如 (a+)+、(.*)*、(\\d{1,3})+），"
                "遇到特定文本会回溯爆炸、卡住机器人；请去掉外层或内层的重复。"
            )
        if _overlapping_branch(body):
            raise UnsafeRegex(
                "正则里重复的分支可能以同样的字符开头（如 (a|a)*、(ab|a.)+），"
                "遇到特定文本会回溯爆炸；请让各分支的开头互不相同，或改用关键词规则。"
            )
    if _adjacent_repeats(nodes):
        raise UnsafeRegex(
            "正则里有相邻的、能匹配同样字符的无限重复（如 \\d+\\d+、.*.*），"
            "长文本会让匹配极慢；请合并成一个重复。"
        )


# --- the timed trial ----------------------------------------------------------------------


def _sample(nodes: list[Node], depth: int = 0) -> str:
    """A short text `nodes` matches (best effort: the trial only needs plausible pieces)."""
    out: list[str] = []
    for op, av in nodes:
        if op == C.LITERAL:
            out.append(chr(av))
        elif op in (C.IN, C.ANY, C.NOT_LITERAL):
            out.append(_class_sample(op, av))
        elif depth < 20 and op in (*_REPEATS, C.POSSESSIVE_REPEAT):
            out.append(_sample(list(av[2]), depth + 1) * min(max(av[0], 1), 8))
        elif depth < 20:
            children = list(_children(op, av))
            if children and op not in (C.ASSERT, C.ASSERT_NOT):
                out.append(_sample(children[0], depth + 1))
    return "".join(out)


def _class_sample(op: Any, av: Any) -> str:
    if op == C.IN:
        for item_op, item_av in av:
            if item_op == C.LITERAL:
                return chr(item_av)
            if item_op == C.RANGE:
                return chr(item_av[0])
            if item_op == C.CATEGORY:
                return {C.CATEGORY_DIGIT: "1", C.CATEGORY_SPACE: " "}.get(item_av, "a")
    return "a"


def trial_inputs(nodes: list[Node]) -> list[str]:
    """Texts of MAX_TEXT characters that make backtracking regexes work hardest."""
    pieces = {"a", "1", " ", "中", _sample(nodes)}
    for op, av in _walk(nodes):
        if op in (*_REPEATS, C.POSSESSIVE_REPEAT):
            pieces.add(_sample(list(av[2])))
        elif op == C.BRANCH:
            pieces.update(_sample(list(b)) for b in av[1])
        elif op == C.LITERAL:
            pieces.add(chr(av))
    inputs: list[str] = []
    for piece in sorted(p for p in pieces if p):
        body = piece * (MAX_TEXT // len(piece))
        inputs += [body[: MAX_TEXT - 1] + "\x00", body[:MAX_TEXT]]
    return inputs[:200]


_TRIAL = """
import json, re, sys, time
job = json.loads(sys.stdin.read())
rx = re.compile(job["pattern"], job["flags"])
for i, text in enumerate(job["inputs"]):
    t0 = time.perf_counter()
    rx.search(text)
    took = time.perf_counter() - t0
    if took > job["limit"]:
        print(json.dumps({"slow": i, "took": took})); sys.exit(0)
print(json.dumps({"ok": True}))
"""


async def timed_trial(pattern: str, nodes: list[Node]) -> None:
    """Run the regex on adversarial texts in a child process; UnsafeRegex if it is slow."""
    job = {
        "pattern": pattern,
        "flags": int(REGEX_FLAGS),
        "inputs": trial_inputs(nodes),
        "limit": TRIAL_INPUT_S,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", "-c", _TRIAL,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(TRIAL_HARD_S):
            out, _ = await process.communicate(json.dumps(job).encode())
    except TimeoutError:
        process.kill()
        await process.wait()
        raise UnsafeRegex(_slow_message()) from None
    answer = json.loads(out or b"{}")
    if not answer.get("ok"):
        raise UnsafeRegex(_slow_message())


def _slow_message() -> str:
    return (
        f"这个正则在一段构造的 {MAX_TEXT} 字长文本上匹配超过 {TRIAL_INPUT_S:g} 秒"
        "（回溯爆炸），会卡住机器人；请简化它（避免嵌套或相邻的重复），或改用关键词规则。"
    )


async def validate(pattern: str) -> None:
    """Refuse (UnsafeRegex) a regex that does not compile or may backtrack catastrophically."""
    nodes = parse(pattern)
    check_static(nodes)
    await timed_trial(pattern, nodes)


# --- required literals (the prefilter) ------------------------------------------------------


def _best(options: list[frozenset[str]]) -> frozenset[str] | None:
    """The most selective any-of set: longest shortest literal, then fewest alternatives."""
    usable = [o for o in options if o and all(o)]
    if not usable:
        return None
    return max(usable, key=lambda o: (min(len(s) for s in o), -len(o)))


def _required(nodes: list[Node], norm: Any, depth: int = 0) -> frozenset[str] | None:
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
        elif op in (*_REPEATS, C.POSSESSIVE_REPEAT) and av[0] >= 1:
            found = _required(list(av[2]), norm, depth + 1)
        elif op == C.ATOMIC_GROUP:
            found = _required(list(av), norm, depth + 1)
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
    any text the regex matches; None when the regex has no such literal (it always runs)."""
    try:
        nodes = list(sre_parser.parse(pattern, REGEX_FLAGS))
    except (re.error, RecursionError, OverflowError):
        return None
    return _required(nodes, norm)


def nfkc_lower(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()
