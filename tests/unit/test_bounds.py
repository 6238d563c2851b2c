"""Sizes as the API server stores them, and statuses that always fit, whatever a site sends."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from durable_search.api.models import HttpTaskSpec
from durable_search.engine import bounds
from durable_search.engine import httptask as engine
from durable_search.http.body import store_body
from tests.support.schema_bounds import status_schema, violations

NOW = dt.datetime(2026, 12, 1, 12, 0, 0, tzinfo=dt.UTC)


def test_go_escapes_html_characters_line_separators_and_controls_in_six_bytes() -> None:
    assert bounds.string_size("<") == 6
    assert bounds.string_size(">&") == 12
    assert bounds.string_size("\u2028") == 6
    assert bounds.string_size("\x01") == 6
    assert bounds.string_size('\n\t"\\') == 8
    assert bounds.string_size("é€") == 5  # raw UTF-8
    assert bounds.go_json_size({"a": ["<b>"]}) == len('{"a":["\\u003cb\\u003e"]}')


def test_512_kib_of_angle_brackets_is_3_mib_stored() -> None:
    assert bounds.string_size("<" * 512 * 1024) == 3 * 1024 * 1024


def test_cut_to_size_keeps_the_longest_prefix_that_fits() -> None:
    text = "ab<cd"
    assert bounds.cut_to_size(text, 2) == "ab"
    assert bounds.cut_to_size(text, 7) == "ab"
    assert bounds.cut_to_size(text, 8) == "ab<"
    assert bounds.cut_to_size(text, 100) == text


def test_text_whose_escaped_size_exceeds_base64_is_stored_as_base64() -> None:
    controls = b"\x01" * (256 * 1024)  # 1.5 MiB once JSON-escaped; 342 KiB as base64
    body = store_body(controls, declared_size=None, max_bytes=512 * 1024, more=False)
    assert body.encoding == "base64"
    prose = store_body(
        b"A page of plain text & one sign.", declared_size=None, max_bytes=99, more=False
    )
    assert prose.encoding == "utf-8"
    markup = store_body(b"<p><b>tags</b></p>", declared_size=None, max_bytes=99, more=False)
    assert markup.encoding == "base64"  # 18 bytes, 58 escaped, 24 as base64


def test_the_status_budget_leaves_room_for_a_large_spec() -> None:
    small = bounds.status_budget({"metadata": {"name": "t"}, "spec": {}})
    large = bounds.status_budget({"spec": {"body": "<" * 100_000}})
    assert small == bounds.STATUS_BUDGET
    assert large < small


def exchange_status(answer: engine.HttpAnswer, budget: int = bounds.STATUS_BUDGET) -> Any:
    spec = HttpTaskSpec.parse({"request": {"url": "https://site.example/"}, "retry": {}})
    sent = engine.Send(engine.ActionKind.ATTEMPT, 1, "https://site.example/", 30)
    exchange = engine.Exchange(answer, "https://site.example/", NOW, 5)
    return engine.after_exchange(spec, {}, NOW, sent, exchange, NOW, budget)


answers = st.builds(
    lambda code, reason, headers, raw, more, location: engine.HttpAnswer(
        status_code=code,
        reason=reason,
        headers=headers,
        body=store_body(raw, declared_size=None, max_bytes=524288, more=more),
        location=location,
    ),
    code=st.integers(min_value=100, max_value=599),
    reason=st.text(max_size=9000),
    headers=st.dictionaries(
        st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=20),
        st.text(max_size=9000),
        max_size=32,
    ),
    raw=st.one_of(
        st.binary(max_size=4000),
        st.text(max_size=4000).map(str.encode),
        st.sampled_from([b"<" * 524288, b"\x01" * 262144, "\u2028".encode() * 174762]),
    ),
    more=st.booleans(),
    location=st.one_of(st.none(), st.text(max_size=9000)),
)


@settings(max_examples=60, deadline=None)
@given(answer=answers)
def test_any_answer_leads_to_a_status_within_the_schema_and_far_below_1_mib(
    answer: engine.HttpAnswer,
) -> None:
    status = exchange_status(answer)
    assert violations(status, status_schema("httptasks.yaml")) == []
    assert bounds.go_json_size(status) <= bounds.STATUS_BUDGET


def test_an_8000_character_reason_and_90_long_headers_fit() -> None:
    headers = {f"x-h{i}": "v" * 7900 for i in range(90)}
    answer = engine.HttpAnswer(
        500, "r" * 8000, headers, store_body(b"page", declared_size=None, max_bytes=10, more=False)
    )
    status = exchange_status(answer)
    assert violations(status, status_schema("httptasks.yaml")) == []
    assert bounds.go_json_size(status["response"]["headers"]) <= bounds.HEADERS_BUDGET + 1024
    assert len(status["message"]) <= bounds.MESSAGE_MAX


def test_a_status_over_its_budget_loses_body_first() -> None:
    page = store_body(b"x" * 400_000, declared_size=None, max_bytes=524288, more=False)
    status = exchange_status(engine.HttpAnswer(200, "OK", {}, page), budget=100_000)
    assert bounds.go_json_size(status) <= 100_000
    assert status["response"]["truncated"] is True
    assert status["outcome"] == "Succeeded"


def test_an_unrecordable_status_keeps_no_body_and_says_why() -> None:
    page = store_body(b"x" * 100, declared_size=None, max_bytes=524288, more=False)
    attempted = exchange_status(engine.HttpAnswer(200, "OK", {"x": "y"}, page))
    status = engine.unrecordable(attempted, "request entity too large", NOW)
    assert "response" not in status
    assert (status["phase"], status["outcome"]) == ("Failed", "Invalid")
    assert status["conditions"][0]["reason"] == "TooLargeToRecord"
    assert json.dumps(status).count("request entity too large") >= 1
