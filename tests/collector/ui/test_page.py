"""The page's pieces that take data of any shape: the trace lookup's answer (whatever the lookup returns) is
shown escaped, as tables and lists; numbers and trace ids parse and print as documented."""

from __future__ import annotations

import pytest

from collector.ui import page, svg
from collector.ui.model import LimitError, parse_limit, parse_trace_id


def test_a_lookup_answer_of_any_shape_is_shown_escaped() -> None:
    answer = {"decision": "kept", "policy": "<errors>", "stages": [{"stage": "tail_sampling", "at": 1.5}]}
    html = page.lookup_panel("ab" * 16, answer, "", True)
    assert 'value="abababababababababababababababab"' in html
    assert "<td>decision</td><td>kept</td>" in html
    assert "&lt;errors&gt;" in html and "<errors>" not in html
    assert "<ul><li><table>" in html and "<td>tail_sampling</td>" in html


def test_lookup_states() -> None:
    assert page.NO_LOOKUP in page.lookup_panel("", None, "", False)
    assert "is not known here" in page.lookup_panel("ab" * 16, None, "", True)
    assert 'class="bad"' in page.lookup_panel("zz", None, "a trace id is 32 hex digits", True)
    assert "lookup-result" not in page.lookup_panel("", None, "", True)


def test_trace_ids_and_limits_parse_or_say_what_is_wrong() -> None:
    assert parse_trace_id(" 0x" + "0A" * 16 + " ") == bytes([10]) * 16
    for text, message in (("abc", "32 hex digits; got 3"), ("g" * 32, "0-9, a-f"), ("0" * 32, "all-zero")):
        with pytest.raises(ValueError, match=message):
            parse_trace_id(text)
    assert parse_limit(None) == 50 and parse_limit("0") == 0 and parse_limit("10000") == 10000
    for text in ("-1", "10001", "ten"):
        with pytest.raises(LimitError):
            parse_limit(text)


def test_numbers_print_short() -> None:
    assert [svg.number(v) for v in (None, 0, 7, 2.5, 1234, 3_200_000, 4.2e9)] == [
        "\u2014", "0", "7", "2.5", "1.23k", "3.2M", "4.2G"]
    assert svg.rate(2963.9) == "2.96k/s" and svg.number(2_650_000, "B") == "2.65MB"
