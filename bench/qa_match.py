"""Q&A matching benchmark: 10,000 rules (8,000 keywords, 2,000 regexes) against 100,000
questions, through the matcher (one Aho-Corasick automaton, regexes prefiltered by their
required literals) and through a naive loop over every rule.

    python bench/qa_match.py                       # defaults below
    python bench/qa_match.py --messages 20000 --naive-every 10

Rules and questions are generated from a seeded pool of common Chinese characters: keyword
rules of 2–4 characters (three quarters `contains`, a quarter `exact`); regex rules in the
shapes operators write (`几点.*直播`, `第\\s*\\d+\\s*天`, alternations, `(A|B)\\s*\\d+`), 2%
with no required literal (`\\d{11}`: they always run); questions of 4–40 characters, a third with a
planted keyword or regex literal. Every regex passes the save-time check (RE2).

The naive loop is so slow that it runs on every `--naive-every`-th question (the same ones
for both, so p50/p99 compare like with like); both must give the same rules in the same
order on those, or the benchmark exits 1. Figures are per question, in one process, pure
CPU (no database: the matcher is what a handler calls once the version is current).
"""

# A script that reports by printing.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._support import percentile
from bots.qa.matcher import Matcher, Mode, NaiveMatcher, RuleSpec
from bots.qa.regex import compile_regex

POOL = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说"
    "产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点"
    "从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原"
    "又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革"
    "位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强"
    "放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交"
    "受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八"
    "离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布"
    "复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精"
    "值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照"
    "参红细引听该铁价严龙飞课播营卡退款作业直回放证书班主任期群助教"
)
REGEX_SHAPES: Sequence[Callable[[random.Random, Callable[[], str]], str]] = (
    lambda r, w: f"{w()}.*{w()}",
    lambda r, w: f"({w()}|{w()}).*({w()}|{w()})",
    lambda r, w: rf"第\s*\d+\s*{w()}",
    lambda r, w: rf"({w()}|{w()})\s*\d+",
    lambda r, w: f"{w()}(吗|呢|么)",
    lambda r, w: rf"{w()}\s*[:：]\s*\w+",
)


def word(rng: random.Random, low: int = 2, high: int = 4) -> str:
    return "".join(rng.choice(POOL) for _ in range(rng.randint(low, high)))


def make_rules(rng: random.Random, keywords: int, regexes: int) -> list[RuleSpec]:
    rules: list[RuleSpec] = []
    for i in range(keywords):
        mode = Mode.EXACT if i % 4 == 0 else Mode.CONTAINS
        patterns = tuple(word(rng) for _ in range(rng.randint(1, 3)))
        rules.append(RuleSpec(i + 1, mode, patterns, priority=rng.randint(1, 200)))
    for i in range(regexes):
        if i % 50 == 0:
            pattern = r"1\d{10}" if i % 100 == 0 else r"\d{4}-\d{2}-\d{2}"
        else:
            pattern = rng.choice(REGEX_SHAPES)(rng, lambda: word(rng, 2, 3))
        compile_regex(pattern)  # what saving it through the admin API checks
        rules.append(RuleSpec(keywords + i + 1, Mode.REGEX, (pattern,), rng.randint(1, 200)))
    return rules


def make_messages(rng: random.Random, rules: Sequence[RuleSpec], count: int) -> list[str]:
    literals = [p for r in rules if r.mode != Mode.REGEX for p in r.patterns]
    messages = []
    for i in range(count):
        text = word(rng, 4, 40)
        if i % 3 == 0:
            at = rng.randint(0, len(text))
            text = text[:at] + rng.choice(literals) + " " + str(rng.randint(1, 30)) + text[at:]
        if i % 7 == 0:
            text += rng.choice(["？", "吗", "！", " 第 3 天", "13800138000"])
        messages.append(text)
    return messages


def timings(match: Callable[[str], list[RuleSpec]], messages: Sequence[str]) -> list[float]:
    took = []
    for text in messages:
        t0 = time.perf_counter_ns()
        match(text)
        took.append((time.perf_counter_ns() - t0) / 1000)
    return took


def report(name: str, took: Sequence[float]) -> None:
    print(
        f"{name:<34} n={len(took):>7,}  p50 {percentile(took, 50):9.1f} µs  "
        f"p99 {percentile(took, 99):9.1f} µs"
        f"  mean {statistics.fmean(took):9.1f} µs"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keywords", type=int, default=8000)
    parser.add_argument("--regexes", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--naive-every", type=int, default=20, help="naive loop on every Nth")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    rules = make_rules(rng, args.keywords, args.regexes)
    messages = make_messages(rng, rules, args.messages)
    t0 = time.perf_counter()
    matcher = Matcher(rules)
    built = time.perf_counter() - t0
    naive = NaiveMatcher(rules)
    always = matcher.unfiltered
    print(
        f"{len(rules):,} rules ({args.keywords:,} keywords, {args.regexes:,} regexes, "
        f"{always} without a required literal); {len(messages):,} questions"
    )
    print(f"matcher build: {built * 1000:.0f} ms")

    fast = timings(matcher.match, messages)
    sample = messages[:: args.naive_every]
    fast_sample = fast[:: args.naive_every]
    slow = timings(naive.match, sample)
    wrong = [t for t in sample if matcher.match(t) != naive.match(t)]
    hits = sum(1 for t in sample if matcher.match(t))

    report("matcher, all questions", fast)
    report(f"matcher, every {args.naive_every}th", fast_sample)
    report(f"naive loop, every {args.naive_every}th", slow)
    ratio50 = percentile(slow, 50) / percentile(fast_sample, 50)
    ratio99 = percentile(slow, 99) / percentile(fast_sample, 99)
    mean_ratio = statistics.fmean(slow) / statistics.fmean(fast_sample)
    print(
        f"speed-up: p50 {ratio50:.0f}×, p99 {ratio99:.0f}×, mean {mean_ratio:.0f}×  "
        f"(target ≥ 20×: {'met' if min(ratio50, ratio99) >= 20 else 'NOT met'})"
    )
    print(f"questions with at least one matching rule (sample): {hits / len(sample):.0%}")
    if wrong:
        print(f"MISMATCH on {len(wrong)} questions, e.g. {wrong[0]!r}")
        return 1
    print("matcher and naive loop agree on every sampled question")
    return 0


if __name__ == "__main__":
    sys.exit(main())
