"""The series a PromQL expression selects: metric names with the label names they match on, and
the labels it groups by. Enough of PromQL's lexical grammar for our rules and dashboard (no
parser ships with Prometheus's package), so the tests can hold them against what the services
export, and break one name on purpose."""

from __future__ import annotations

import dataclasses
import re

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)[a-zA-Z0-9_]*)
  | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<space>\s+)
  | (?P<other>.)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_MATCHER = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*")


@dataclasses.dataclass(frozen=True)
class Selector:
    metric: str
    labels: tuple[str, ...]  # the label names it matches on
    start: int  # the metric name's offset in the expression
    end: int


def _tokens(expr: str) -> list[tuple[str, str, int]]:
    return [
        (m.lastgroup, m.group(), m.start()) for m in _TOKEN.finditer(expr) if m.lastgroup != "space"
    ]


def _matchers(expr: str, brace: int) -> tuple[tuple[str, ...], int]:
    """The label names of the matchers opening at `brace` and the offset after the `}`."""
    labels = []
    pos = brace + 1
    while True:
        closing = re.compile(r"\s*(,\s*)?\}").match(expr, pos)
        if closing:
            return tuple(labels), closing.end()
        matcher = _MATCHER.match(expr, pos)
        if not matcher:
            raise ValueError(f"unreadable matcher at {pos}: {expr[pos : pos + 30]!r}")
        labels.append(matcher.group(1))
        value = _TOKEN.match(expr, matcher.end())
        if not value or value.lastgroup != "string":
            raise ValueError(f"matcher value is no string at {matcher.end()}")
        pos = re.compile(r"\s*,?").match(expr, value.end()).end()


def selectors(expr: str) -> list[Selector]:
    found = []
    tokens = _tokens(expr)
    skip_until = -1
    for i, (kind, text, pos) in enumerate(tokens):
        if pos < skip_until or kind != "name" or text in _KEYWORDS or text in _GROUPING:
            continue
        following = tokens[i + 1] if i + 1 < len(tokens) else (None, "", len(expr))
        if following[1] == "(" or following[1] in {"by", "without"}:
            continue  # a function or an aggregation
        previous = tokens[i - 1][1] if i else ""
        if previous in _GROUPING or (previous in {",", "("} and _in_grouping(tokens, i)):
            continue
        labels: tuple[str, ...] = ()
        if following[1] == "{":
            labels, skip_until = _matchers(expr, following[2])
        found.append(Selector(text, labels, pos, pos + len(text)))
    return found


def _in_grouping(tokens: list[tuple[str, str, int]], i: int) -> bool:
    """Whether token i sits inside the parentheses of a `by (…)`-like list."""
    j = i - 1
    while j >= 0 and tokens[j][1] != "(":
        if tokens[j][0] != "name" and tokens[j][1] != ",":
            return False
        j -= 1
    return j > 0 and tokens[j - 1][1] in _GROUPING


def grouping_labels(expr: str) -> set[str]:
    """Label names in by/without/on/ignoring/group_* lists."""
    tokens = _tokens(expr)
    labels = set()
    for i, (kind, text, _) in enumerate(tokens):
        if kind == "name" and text not in _KEYWORDS and text not in _GROUPING:
            previous = tokens[i - 1][1] if i else ""
            if previous in _GROUPING or (previous in {",", "("} and _in_grouping(tokens, i)):
                labels.add(text)
    return labels


def exported_name(metric: str) -> str:
    """The family a histogram's or counter's sample belongs to, as /metrics declares it."""
    return re.sub(r"_(bucket|sum|count|created)$", "", metric)
