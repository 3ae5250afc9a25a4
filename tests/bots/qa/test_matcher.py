"""The matcher: modes, normalization, order, scope, and the prefilter agreeing with a loop
over every rule."""

from __future__ import annotations

import random

from bots.qa.matcher import Matcher, Mode, NaiveMatcher, RuleSpec, normalize, question_text
from bots.qa.regex import MAX_TEXT

RULES = [
    RuleSpec(1, Mode.EXACT, ("你好",)),
    RuleSpec(2, Mode.CONTAINS, ("退款", "Refund")),
    RuleSpec(3, Mode.REGEX, (r"(几点|什么时候).*(直播|开课)",), priority=5),
    RuleSpec(4, Mode.REGEX, (r"\d+\s*天",)),
    RuleSpec(5, Mode.CONTAINS, ("直播",), priority=5),
    RuleSpec(6, Mode.CONTAINS, ("直播",), cohort_id=7),
]


def ids(rules: list[RuleSpec]) -> list[int]:
    return [r.id for r in rules]


def test_normalization_ignores_width_case_spaces_and_punctuation() -> None:
    assert normalize("  ＲＥＦＵＮＤ？ 怎么\t退款！") == "refund怎么退款"


def test_each_mode() -> None:
    matcher = Matcher(RULES)
    assert ids(matcher.match("你好！")) == [1]
    assert ids(matcher.match("你好啊")) == []  # exact: the whole question
    assert ids(matcher.match("怎么 REFUND?")) == [2]
    assert ids(matcher.match("共 21 天吗")) == [4]
    assert ids(matcher.match("二十一天吗")) == []


def test_lowest_priority_first_then_id_and_scope() -> None:
    matcher = Matcher(RULES)
    assert ids(matcher.match("今晚几点直播")) == [3, 5, 6]
    assert ids(matcher.match("今晚几点直播", allow=lambda r: r.cohort_id is None)) == [3, 5]


def test_the_prefilter_finds_what_a_loop_over_every_rule_finds() -> None:
    rng = random.Random(7)
    words = ["直播", "回放", "退款", "作业", "几点", "开课", "第", "天", "打卡", "证书"]
    rules = [
        RuleSpec(i, rng.choice([Mode.EXACT, Mode.CONTAINS]), (rng.choice(words),))
        for i in range(40)
    ]
    rules += [
        RuleSpec(100 + i, Mode.REGEX, (p,), priority=rng.randint(1, 9))
        for i, p in enumerate(
            [
                r"(几点|什么时候).*(直播|开课)",
                r"第\s*\d+\s*天",
                r"\d+",
                r"回放|证书",
                r"(打卡)?作业",
                r"\w+回放$",
                r"[\u4e00-\u9fa5]{2}证书",
            ]
        )
    ]
    fast, naive = Matcher(rules), NaiveMatcher(rules)
    for _ in range(500):
        text = "".join(
            rng.choice([*words, " ", "3", "？", "的"]) for _ in range(rng.randint(1, 6))
        )
        assert ids(fast.match(text)) == ids(naive.match(text)), text


def test_matching_sees_the_first_2048_characters_counted_after_nfkc_too() -> None:
    matcher = Matcher(
        [RuleSpec(1, Mode.REGEX, (r"直播$",)), RuleSpec(2, Mode.CONTAINS, ("回放",))]
    )

    assert ids(matcher.match("问" * (MAX_TEXT - 2) + "直播")) == [1]
    assert ids(matcher.match("问" * (MAX_TEXT - 1) + "直播回放")) == []
    # NFKC spells ㍿ as 株式会社: the text grows fourfold, what matching sees does not.
    assert ids(matcher.match("㍿" * 1000 + "回放")) == []
    assert question_text("㍿" * MAX_TEXT) == "株式会社" * (MAX_TEXT // 4)


def test_may_match_is_true_whenever_a_rule_matches_and_runs_no_regex() -> None:
    """The callback asks `may_match` before it waits for a passive reply: a question some rule
    answers must never be told no; one no keyword or needed literal occurs in is."""
    rng = random.Random(11)
    words = ["直播", "回放", "退款", "作业", "几点", "开课", "第", "天", "收到", "谢谢"]
    rules = [RuleSpec(i, Mode.CONTAINS, (rng.choice(words[:6]),)) for i in range(6)]
    rules += [RuleSpec(50, Mode.EXACT, ("你好",)), RuleSpec(51, Mode.REGEX, (r"第\s*\d+\s*天",))]
    matcher = Matcher(rules)
    for _ in range(500):
        text = "".join(rng.choice([*words, " ", "3", "？"]) for _ in range(rng.randint(1, 5)))
        if matcher.match(text):
            assert matcher.may_match(text), text
    assert not matcher.may_match("收到，谢谢！")
    assert not matcher.may_match("你好啊")  # exact: the whole question
    assert matcher.may_match("你好！")
    # The regex's literal occurs, so it may match, though it does not: no regex ran.
    assert matcher.may_match("第 N 天")
    assert not matcher.match("第 N 天")
    # A regex with no literal to look for runs on every question: so every one may match.
    assert Matcher([RuleSpec(1, Mode.REGEX, (r"\d{4}",))]).may_match("收到")
    assert not Matcher([]).may_match("回放")
