"""Alertmanager label matchers: ``label="value"``, ``label!="value"``, ``label=~"regex"``, ``label!~"regex"``.

The value may be unquoted. Regexes are anchored (they must match the whole value). A label an alert does
not carry matches as the empty string. Used by the config (to check matchers) and the route tree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Literal

MatchOp = Literal["=", "!=", "=~", "!~"]

_MATCHER_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class MatcherError(ValueError):
    """A matcher string that does not parse, or whose regex does not compile."""


class Matcher:
    """One ``label op value`` test."""

    __slots__ = ("label", "op", "regex", "value")

    def __init__(self, label: str, op: MatchOp, value: str) -> None:
        self.label = label
        self.op = op
        self.value = value
        self.regex: re.Pattern[str] | None = None
        if op in ("=~", "!~"):
            try:
                self.regex = re.compile(value, re.DOTALL)  # used with fullmatch: anchored at both ends
            except re.error as e:
                raise MatcherError(f"regex {value!r} does not compile: {e}") from None

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.label, "")
        if self.regex is not None:
            found = self.regex.fullmatch(got) is not None
            return found if self.op == "=~" else not found
        return (got == self.value) if self.op == "=" else (got != self.value)

    def __str__(self) -> str:
        return f"{self.label}{self.op}{json.dumps(self.value)}"

    def __repr__(self) -> str:
        return f"Matcher({self})"


def parse_matcher(text: str) -> Matcher:
    """``team="payments"`` (or ``!=``, ``=~``, ``!~``) into a :class:`Matcher`; raises :class:`MatcherError`."""
    m = _MATCHER_RE.match(text)
    if m is None:
        raise MatcherError(
            f"invalid matcher {text!r}: expected label=\"value\", label!=\"value\", label=~\"regex\" or "
            "label!~\"regex\""
        )
    label, op, raw = m.group(1), m.group(2), m.group(3)
    if raw.startswith('"') or raw.endswith('"'):
        if len(raw) < 2 or not (raw.startswith('"') and raw.endswith('"')):
            raise MatcherError(f"invalid matcher {text!r}: unbalanced quotes in the value")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            raise MatcherError(f"invalid matcher {text!r}: bad quoted value ({e.msg})") from None
        if not isinstance(value, str):
            raise MatcherError(f"invalid matcher {text!r}: the value must be a string")
    else:
        if raw.startswith(("=", "~")):
            raise MatcherError(f"invalid matcher {text!r}: operator must be one of =, !=, =~, !~ "
                               "(quote a value that starts with = or ~)")
        value = raw
    return Matcher(label, op, value)  # type: ignore[arg-type]  # op is one of the four by the regex
