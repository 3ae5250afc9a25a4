"""Which Q&A rules a question matches: one Aho-Corasick automaton for every keyword, and
regexes run only when a literal they need occurred.

Keywords and questions are normalized alike (`normalize`: NFKC, lower case, no spaces,
punctuation or control characters), so "怎么 退款？" matches the keyword "怎么退款". `exact`
means the whole normalized question equals a pattern, `contains` that a pattern occurs in it.
Regexes are searched by RE2 (`qa_regex.compile_regex`: linear time, case-insensitive) in the
question after NFKC, lower case and trimming surrounding whitespace (so `\\s`, digits and
punctuation still mean something, and `$` need not allow for a trailing newline). Matching
sees the first MAX_TEXT characters of a question, counted before and after NFKC (which may
lengthen text), whoever asks: a member's message, the H5 FAQ search.

The prefilter: each regex's required literals (`qa_regex.required_literals`, normalized)
go into the same automaton; a regex runs only if one of them occurred. That is sound because
normalizing deletes characters one by one: if the literal occurs in the lower-cased text, its
normalized form occurs in the normalized text. Regexes with no required literal always run.

A stored pattern RE2 cannot take (saved before it was the engine) is left out, with a
warning; the rule listing shows why (`pattern_error`).

A `Matcher` is immutable; `bots.qa.matching` rebuilds it when the rules' version moves.
"""

from __future__ import annotations

import importlib
import logging
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bots.qa.regex import MAX_TEXT, UnsafeRegex, compile_regex, nfkc_lower, required_literals

# pyahocorasick ships no type stubs.
ahocorasick: Any = importlib.import_module("ahocorasick")
logger = logging.getLogger(__name__)
_DROP = ("P", "Z", "C")  # punctuation, separators (spaces), control/format characters


class Mode(StrEnum):
    EXACT = "exact"
    CONTAINS = "contains"
    REGEX = "regex"


def strip(text: str) -> str:
    return "".join(c for c in text if unicodedata.category(c)[0] not in _DROP)


def normalize(text: str) -> str:
    """The form keywords and questions are compared in."""
    return strip(nfkc_lower(text))


def question_text(text: str) -> str:
    """What regexes search: at most MAX_TEXT characters, NFKC, lower case, trimmed."""
    return nfkc_lower(text[:MAX_TEXT])[:MAX_TEXT].strip()


def _utf8(text: str) -> bytes:
    # Encoded once per question, not by each regex. Lone surrogates cannot arrive (XML and
    # the H5 form refuse them); were one to, it is dropped rather than raise.
    return text.encode(errors="ignore")


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What the matcher needs of a rule (a row of `qa_rules`, or a benchmark's rule)."""

    id: int
    mode: Mode
    patterns: tuple[str, ...]
    priority: int = 100
    cohort_id: int | None = None
    group_id: int | None = None


def _usable(rule: RuleSpec) -> list[tuple[str, Any]]:
    """A regex rule's patterns RE2 takes, each with its compiled form; the others skipped."""
    usable = []
    for pattern in rule.patterns:
        try:
            usable.append((pattern, compile_regex(pattern)))
        except UnsafeRegex as exc:
            logger.warning("Q&A rule %s: regex %r left out: %s", rule.id, pattern, exc)
    return usable


@dataclass(slots=True)
class _Entry:
    exact: list[int] = field(default_factory=list)  # rule indexes
    contains: list[int] = field(default_factory=list)
    regex: list[int] = field(default_factory=list)


Allow = Callable[[RuleSpec], bool]


class Matcher:
    def __init__(self, rules: Iterable[RuleSpec], version: int = 0) -> None:
        # Sorted once: a match's rules come out in answer order (lowest priority, then id).
        self.rules: tuple[RuleSpec, ...] = tuple(sorted(rules, key=lambda r: (r.priority, r.id)))
        self.version = version
        self._regexes: dict[int, list[Any]] = {}
        self._always: list[int] = []  # regex rules without a required literal
        self._automaton = ahocorasick.Automaton()
        entries: dict[str, _Entry] = {}
        for index, rule in enumerate(self.rules):
            self._add(index, rule, entries)
        for key, entry in entries.items():
            self._automaton.add_word(key, entry)
        if entries:
            self._automaton.make_automaton()

    def _add(self, index: int, rule: RuleSpec, entries: dict[str, _Entry]) -> None:
        if rule.mode != Mode.REGEX:
            for pattern in rule.patterns:
                key = normalize(pattern)
                if key:
                    entry = entries.setdefault(key, _Entry())
                    (entry.exact if rule.mode == Mode.EXACT else entry.contains).append(index)
            return
        usable = _usable(rule)
        if not usable:
            return
        self._regexes[index] = [regex for _, regex in usable]
        literals: set[str] = set()
        for pattern, _ in usable:
            found = required_literals(pattern, normalize)
            if found is None:
                self._always.append(index)
                return
            literals |= found
        for literal in literals:
            entries.setdefault(literal, _Entry()).regex.append(index)

    @property
    def has_regexes(self) -> bool:
        """Whether matching may run a regex (else it is one pass of the automaton over the
        question: linear, microseconds)."""
        return bool(self._regexes)

    @property
    def unfiltered(self) -> int:
        """Regex rules with no required literal: they run on every question."""
        return len(self._always)

    def may_match(self, text: str) -> bool:
        """Whether `text` may match some rule, whoever asks: a keyword occurs in it, or a
        literal a regex needs (or a regex needs none). No regex runs: one linear pass of the
        automaton, cheap enough for the callback to ask before it decides to wait."""
        if self._always:
            return True
        exact, found = self._entries(strip(question_text(text)))
        return bool(exact) or any(entry.contains or entry.regex for entry in found)

    def _entries(self, key: str) -> tuple[list[int], Iterator[_Entry]]:
        """The rules whose exact keyword `key` is, and the automaton's entries that occur in it."""
        if not key or not len(self._automaton):
            return [], iter(())
        whole: _Entry | None = self._automaton.get(key, None)  # the trie's own lookup
        return (whole.exact if whole is not None else []), (
            entry for _end, entry in self._automaton.iter(key)
        )

    def match(self, text: str, allow: Allow | None = None) -> list[RuleSpec]:
        """Every rule `text` matches (and `allow` admits), lowest priority first, ties by id."""
        lowered = question_text(text)
        key = strip(lowered)
        encoded = _utf8(lowered)
        regex_candidates: set[int] = set(self._always)
        exact, found = self._entries(key)
        hits: set[int] = set(exact)
        for entry in found:
            hits.update(entry.contains)
            regex_candidates.update(entry.regex)
        for index in regex_candidates - hits:
            rule = self.rules[index]
            if (allow is None or allow(rule)) and self._searches(index, encoded):
                hits.add(index)
        ordered = sorted(hits)
        return [self.rules[i] for i in ordered if allow is None or allow(self.rules[i])]

    def _searches(self, index: int, text: bytes) -> bool:
        return any(rx.search(text) for rx in self._regexes[index])


class NaiveMatcher:
    """The same answers by trying every rule in turn (the benchmark's baseline, tests' oracle);
    patterns are normalized and regexes compiled up front, so only the loop differs."""

    def __init__(self, rules: Iterable[RuleSpec]) -> None:
        self.rules = sorted(rules, key=lambda r: (r.priority, r.id))
        self._keys = [tuple(k for k in map(normalize, r.patterns) if k) for r in self.rules]
        self._regexes = [
            [regex for _, regex in _usable(r)] if r.mode == Mode.REGEX else [] for r in self.rules
        ]

    def match(self, text: str) -> list[RuleSpec]:
        lowered = question_text(text)
        key, encoded = strip(lowered), _utf8(lowered)
        found = []
        for rule, keys, regexes in zip(self.rules, self._keys, self._regexes, strict=True):
            if rule.mode == Mode.REGEX:
                ok = any(rx.search(encoded) for rx in regexes)
            elif rule.mode == Mode.EXACT:
                ok = key in keys
            else:
                ok = any(k in key for k in keys)
            if ok:
                found.append(rule)
        return found
