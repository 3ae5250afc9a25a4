"""Templates that would stall or bloat the service if rendered without bounds (issue 10,
findings 3 and 4, and nested loops within range()), each with the Chinese reason that names
the bound it hits: for the sandbox's own tests, the scripts API's and the stall tests."""

from __future__ import annotations

# The templates of issue 10 (findings 3 and 4), and what each is told.
FINDINGS: dict[str, tuple[str, str]] = {
    "nested range loops": (
        "{% for i in range(100000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}",
        "range() 最多生成 1000 个数",
    ),
    "power tower": ("{{ ((10**100**100**100)**10) > 1 }}", "乘方结果太大"),
    "ljust a billion": ("{{ 'a'.ljust(10**9) }}", "超过上限（16384 个字符或项"),
    "ljust 2**62": ("{{ 'a'.ljust(2**62) }}", "超过上限（16384 个字符或项"),
    "recursive macro": (
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "嵌套超过上限（20 层）",
    ),
}
# Each range() within its bound, the loops together past theirs.
LOOPS_WITHIN_RANGE = (
    "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
    "模板循环次数超过上限（10000 次）",
)
HOSTILE: dict[str, tuple[str, str]] = {**FINDINGS, "loops within range": LOOPS_WITHIN_RANGE}
