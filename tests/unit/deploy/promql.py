"""The metric names a PromQL expression reads: enough of PromQL for our rules and panels
(strings, label matchers, ranges, grouping clauses and functions are not metric names)."""

from __future__ import annotations

import re
from typing import Final

_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS: Final = re.compile(r"\{[^{}]*\}")
_RANGE: Final = re.compile(r"\[[^\]]*\]")
_GROUPING: Final = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_NAME: Final = re.compile(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
KEYWORDS: Final = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
)


def metric_names(expr: str) -> set[str]:
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in KEYWORDS:
            continue  # a function (rate, max, histogram_quantile...) or an operator
        names.add(name)
    return names


AGGREGATIONS: Final = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
    }
)
FUNCTIONS: Final = frozenset(
    {
        "abs",
        "absent",
        "absent_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "day_of_month",
        "day_of_week",
        "delta",
        "deriv",
        "exp",
        "floor",
        "histogram_quantile",
        "idelta",
        "increase",
        "irate",
        "label_replace",
        "label_join",
        "ln",
        "log2",
        "log10",
        "predict_linear",
        "rate",
        "resets",
        "round",
        "scalar",
        "sort",
        "sort_desc",
        "sqrt",
        "time",
        "timestamp",
        "vector",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "present_over_time",
        "quantile_over_time",
        "stddev_over_time",
    }
)


def syntax_problems(expr: str) -> list[str]:
    """What is certainly wrong: unbalanced brackets, a call of no PromQL function, a range
    on something that is not a selector."""
    problems = []
    text = _STRING.sub('""', expr)
    for opening, closing in ("()", "[]", "{}"):
        depth = 0
        for char in text:
            depth += (char == opening) - (char == closing)
            if depth < 0:
                break
        if depth:
            problems.append(f"unbalanced {opening}{closing}")
    for match in _NAME.finditer(_MATCHERS.sub(" ", _GROUPING.sub(" ", text))):
        name, call = match.group(1), match.group(2)
        if call and name not in AGGREGATIONS | FUNCTIONS:
            problems.append(f"{name}() is no PromQL function")
    for match in re.finditer(r"([\w)}])\s*\[(\w+)\]", _MATCHERS.sub("{}", text)):
        if not re.fullmatch(r"\d+[smhdwy]", match.group(2)):
            problems.append(f"[{match.group(2)}] is no range")
    return problems
