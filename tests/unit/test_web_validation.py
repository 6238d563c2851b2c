"""The web API's input checks: exactly what the OpenAPI document calls valid, never a 500."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import TypeVar

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from durable_search.api.constants import SearchPhase
from durable_search_web import validation
from durable_search_web.problems import ProblemError

T = TypeVar("T")
PROFILE = settings(max_examples=300, derandomize=True, deadline=None)


def ecma(pattern: str) -> str:
    """A documented (ECMA-262) pattern for Python's re: there ``$`` also matches before a
    final newline, which the document's readers would not call a match."""
    return pattern.removesuffix("$") + r"\Z" if pattern.endswith("$") else pattern


def outcome(call: Callable[[], T]) -> tuple[int, T | None]:
    """(200, the value) or (the problem's status, None)."""
    try:
        return 200, call()
    except ProblemError as problem:
        return problem.status, None


def status_of(call: Callable[[], object]) -> int:
    return outcome(call)[0]


# -- top, timeoutSeconds ------------------------------------------------------------------------


@PROFILE
@given(st.text(max_size=12))
@example("²")
@example("\uff11\uff10")  # fullwidth 10
@example("\u0663")  # Arabic-Indic 3
@example("1" * 5000)
@example("1_0")
def test_top_is_an_ascii_integer_from_1_to_500_or_a_400(raw: str) -> None:
    expected_valid = re.fullmatch(r"[0-9]{1,9}", raw) is not None and 1 <= int(raw) <= 500
    status, parsed = outcome(lambda: validation.parse_list({"top": raw}))
    assert status == (200 if expected_valid else 400)
    assert parsed is None or parsed.top == int(raw)


@PROFILE
@given(st.integers(min_value=1, max_value=500))
def test_every_documented_top_is_accepted(top: int) -> None:
    assert validation.parse_list({"top": str(top)}).top == top


@PROFILE
@given(st.text(max_size=20))
@example("nan")
@example("inf")
@example("1e400")
@example("\u0661")
@example("1_0")
def test_timeout_is_a_number_from_0_to_60_or_a_400(raw: str) -> None:
    status, value = outcome(lambda: validation.parse_timeout(raw, 60))
    assert status in (200, 400)
    if value is not None:
        assert 0 <= value <= 60
        assert raw.isascii() and "_" not in raw


@PROFILE
@given(st.floats(min_value=0, max_value=60, allow_nan=False))
def test_every_documented_timeout_is_accepted(value: float) -> None:
    # What a client (or schemathesis) writes: Python's repr, exponents included.
    assert validation.parse_timeout(repr(value), 60) == value


# -- times, statuses, continuation tokens -------------------------------------------------------


@PROFILE
@given(st.datetimes(timezones=st.just(dt.UTC)))
def test_every_rfc3339_time_is_accepted(moment: dt.datetime) -> None:
    for text in (moment.isoformat(), moment.isoformat().replace("+00:00", "Z")):
        assert validation.parse_rfc3339(text) == moment


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-01-31", "2026-01-31T12:00:00", "2026-13-01T00:00:00Z"]
)
def test_anything_else_is_not_a_time(text: str) -> None:
    assert validation.parse_rfc3339(text) is None
    assert status_of(lambda: validation.parse_list({"createdTimeFrom": text})) == 400


@PROFILE
@given(st.lists(st.sampled_from([p.value for p in SearchPhase]), min_size=1, max_size=5))
def test_runtime_status_takes_a_comma_list_of_phases(phases: list[str]) -> None:
    parsed = validation.parse_list({"runtimeStatus": ",".join(phases)})
    assert parsed.statuses == frozenset(SearchPhase(p) for p in phases)
    assert re.search(validation.RUNTIME_STATUS_PATTERN, ",".join(phases))


@pytest.mark.parametrize("raw", ["", "Sleeping", "Running,", " Running", "running"])
def test_runtime_status_refuses_anything_else(raw: str) -> None:
    assert status_of(lambda: validation.parse_list({"runtimeStatus": raw})) == 400


@PROFILE
@given(
    st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9999, 1, 1)),
    st.from_regex(validation.OBJECT_NAME, fullmatch=True),
)
def test_continuation_tokens_round_trip_and_match_their_documented_pattern(
    moment: dt.datetime, name: str
) -> None:
    created = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    token = validation.encode_continuation(created, name)
    assert re.search(validation.CONTINUATION_PATTERN, token)
    assert validation.decode_continuation(token) == (created, name)


@PROFILE
@given(st.from_regex(ecma(validation.CONTINUATION_PATTERN)))
def test_every_documented_token_is_accepted(token: str) -> None:
    assert validation.decode_continuation(token) is not None


@pytest.mark.parametrize("token", ["", "!!", "MjAyNnxz", "20260131T120000Z.", "x" * 300])
def test_other_tokens_are_a_400(token: str) -> None:
    assert status_of(lambda: validation.decode_continuation(token)) == 400


# -- bodies ---------------------------------------------------------------------------------


@PROFILE
@given(st.binary(max_size=200))
@example(b"[" * 15000)
@example(b'{"a":' * 3000)
@example(b"\xff")
@example(b"NaN")
@example(b'{"query": Infinity}')
@example(b"1" * 5000)
def test_any_body_is_json_or_a_400(raw: bytes) -> None:
    assert status_of(lambda: validation.parse_json(raw)) in (200, 400)


@PROFILE
@given(
    st.recursive(st.none() | st.booleans() | st.text(), lambda kids: st.lists(kids), max_leaves=30)
)
def test_json_within_the_depth_limit_parses_as_json(value: object) -> None:
    text = json.dumps(value)
    if not validation.json_depth_exceeds(text, validation.MAX_JSON_DEPTH):
        assert validation.parse_json(text.encode()) == value


@pytest.mark.parametrize("depth", [1, validation.MAX_JSON_DEPTH])
def test_the_depth_limit_counts_brackets_outside_strings_only(depth: int) -> None:
    text = "[" * depth + '"[[[[{{{{"' + "]" * depth
    assert not validation.json_depth_exceeds(text, validation.MAX_JSON_DEPTH)
    assert validation.json_depth_exceeds("[" + text + "]", depth)


@PROFILE
@given(
    st.fixed_dictionaries(
        {"query": st.text(min_size=1, max_size=512).filter(lambda q: q.strip())},
        optional={
            "providers": st.lists(st.from_regex(validation.DNS_LABEL, fullmatch=True), max_size=16),
            "watcher": st.booleans(),
        },
    )
)
def test_every_documented_start_request_is_accepted(payload: dict[str, object]) -> None:
    start = validation.parse_start(payload)
    assert start.query == payload["query"]


@PROFILE
@given(st.dictionaries(st.text(max_size=8), st.none() | st.integers() | st.text(), max_size=4))
def test_any_other_object_is_a_400_or_a_start(payload: dict[str, object]) -> None:
    assert status_of(lambda: validation.parse_start(payload)) in (200, 400)


@pytest.mark.parametrize("name", ["abc\n", "p\n", "Not-A-Name", "-x", "x" * 64])
def test_provider_names_are_dns_labels_exactly(name: str) -> None:
    assert status_of(lambda: validation.parse_start({"query": "q", "providers": [name]})) == 400


@PROFILE
@given(st.text(max_size=300))
@example("s-abc\n")
def test_a_search_id_is_an_object_name_or_a_404(name: str) -> None:
    expected = validation.OBJECT_NAME.fullmatch(name) is not None
    assert (status_of(lambda: validation.check_name(name)) == 200) is expected


def test_a_query_needs_a_character_that_is_not_white_space() -> None:
    for blank in ("", " ", "\t\n", "\u2003", "\x1c"):
        assert status_of(lambda blank=blank: validation.parse_query(blank)) == 400
    assert validation.parse_query(" café ") == " café "


# -- the management routes' inputs ----------------------------------------------------------


@PROFILE
@given(st.text(max_size=80))
@example("a" * 63)
@example("a" * 64)
@example("Upper")
@example("ok-id")
def test_a_put_id_is_accepted_exactly_when_the_documented_pattern_matches(raw: str) -> None:
    documented = bool(re.match(ecma(validation.DNS_LABEL_PATTERN), raw)) and len(raw) <= 63
    assert (status_of(lambda: validation.check_new_id(raw)) == 200) == documented


@PROFILE
@given(st.text(max_size=300))
@example("x" * 256)
@example("x" * 257)
@example("tab\there")
def test_a_terminate_reason_is_accepted_exactly_when_the_documented_pattern_matches(
    raw: str,
) -> None:
    from durable_search_web.openapi import _REASON_PATTERN

    documented = bool(re.match(ecma(_REASON_PATTERN), raw)) and len(raw) <= 256
    assert (status_of(lambda: validation.parse_terminate_reason(raw)) == 200) == documented


def test_a_purge_needs_a_filter_and_takes_the_lists_own() -> None:
    assert status_of(lambda: validation.parse_purge({})) == 400
    assert status_of(lambda: validation.parse_purge({"top": "5"})) == 400
    assert status_of(lambda: validation.parse_purge({"runtimeStatus": "Done"})) == 400
    selection = validation.parse_purge(
        {"runtimeStatus": "Failed,Completed", "createdTimeTo": "2026-01-01T00:00:00Z"}
    )
    assert selection.statuses == {SearchPhase.FAILED, SearchPhase.COMPLETED}
    assert selection.created_to == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert selection.created_from is None
