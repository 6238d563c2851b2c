"""engine.cel: compile rules, the response view's bounds, evaluation, conditions and outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from durable_search.engine import cel
from durable_search.engine.bounds import string_size

JSON_BODY = json.dumps(
    {
        "status": "succeeded",
        "items": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        "n": None,
        "f": 1.5,
    }
)


def view(body: str = JSON_BODY, *, complete: bool = True, status: int = 200) -> cel.ResponseView:
    return cel.response_view(status, {"Content-Type": "application/json"}, body, complete)


def value_of(text: str, response: cel.ResponseView | None = None) -> Any:
    return cel.evaluate(cel.compile_expression(text), response or view())


# -- compiling ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("1 +", "Syntax error"),
        ("", "empty"),
        ("x == 1", "undeclared reference to 'x'"),
        ("foo(1)", "undeclared reference to 'foo'"),
        ("response.statusCode == '200'", "no matching overload"),
        ("response.bodyy.size() > 0", "undeclared reference"),
        ("size(1)", "no matching overload"),
    ],
)
def test_an_expression_that_does_not_compile_says_why(text: str, says: str) -> None:
    with pytest.raises(cel.InvalidExpression) as raised:
        cel.compile_expression(text)
    assert says in raised.value.message
    assert len(raised.value.message) <= cel.MESSAGE_MAX
    assert "INVALID_ARGUMENT" not in raised.value.message


def test_expressions_are_at_most_1024_characters() -> None:
    fits = "response.body == '" + "x" * (1024 - 19) + "'"
    assert len(fits) == 1024
    cel.compile_expression(fits)
    with pytest.raises(cel.InvalidExpression, match="1025 characters; at most 1024"):
        cel.compile_expression(fits + " ")


@pytest.mark.parametrize(
    "text",
    [
        "response.json.items.map(i, response.json.items.map(j, j))",
        "response.json.items.all(i, i.tags.exists(t, t == 'x'))",
        "[1].filter(x, [2].exists_one(y, y == x)).size() > 0",
        "response.json.items.map(i, [1].map(j, [2].map(k, k)))",
    ],
)
def test_comprehension_macros_nested_two_levels_are_refused(text: str) -> None:
    with pytest.raises(cel.InvalidExpression, match=r"nested [23] levels deep; at most 1"):
        cel.compile_expression(text)


@pytest.mark.parametrize(
    "text",
    [
        "response.json.items.map(i, i.id)",
        "response.json.items.filter(i, i.id > 1).map(i, i.id)",  # chained, not nested
        "response.json.items.exists(i, i.id == 1) && [1, 2].all(x, x > 0)",
        "has(response.json.status) && response.json.items.map(i, has(i.id)).size() > 0",
    ],
)
def test_one_level_and_chained_comprehensions_compile(text: str) -> None:
    cel.compile_expression(text)


def test_compiles_are_cached_by_text_and_failures_too() -> None:
    first = cel.compile_expression("response.statusCode == 201")
    assert cel.compile_expression("response.statusCode == 201") is first
    messages = []
    for _ in range(2):
        with pytest.raises(cel.InvalidExpression) as refused:
            cel.compile_expression("nope(")
        messages.append(refused.value.message)
    assert messages[0] is messages[1]  # the cached refusal: the library was not asked again


def test_the_compile_cache_holds_cache_size_texts_and_forgets_the_least_recent() -> None:
    texts = [f"response.statusCode == {n} || response.body == 'c'" for n in range(cel.CACHE_SIZE)]
    compiled = [cel.compile_expression(text) for text in texts]
    assert all(cel.compile_expression(t) is c for t, c in zip(texts, compiled, strict=True))
    cel.compile_expression("response.statusCode == -1 || response.body == 'c'")
    assert cel.compile_expression(texts[-1]) is compiled[-1]
    assert cel.compile_expression(texts[0]) is not compiled[0]  # the least recent went


def test_a_condition_must_be_able_to_give_a_bool() -> None:
    with pytest.raises(cel.InvalidExpression, match="must give a bool; this expression gives int"):
        cel.compile_condition("response.statusCode")
    assert cel.compile_condition("response.json.ok").returns == "DYN"  # known only at run time
    assert cel.compile_condition("response.statusCode == 200").returns == "BOOL"


# -- the variables --------------------------------------------------------------------------


def test_each_variable() -> None:
    response = view()
    assert value_of("response.statusCode", response) == 200
    assert value_of("response.headers", response) == {"content-type": "application/json"}
    assert value_of("response.headers['content-type']", response) == "application/json"
    assert value_of("response.body", response) == JSON_BODY
    assert value_of("response.json.items.map(i, i.id)", response) == [1, 2]
    assert value_of("response.json.n == null && response.json != null", response) is True
    assert value_of("response.json.f > 1.0 && dyn(response.json.f) > 1", response) is True


def test_json_is_null_unless_the_body_is_complete_json() -> None:
    assert view(complete=False).json is None
    assert view("not json").json is None
    assert view("").json is None
    assert view('{"a": NaN}').json is None  # Python's json would take it; JSON does not
    assert view('{"a": Infinity}').json is None
    assert value_of("response.json == null", view("plain text")) is True
    assert view('"just a string"').json == "just a string"


def test_json_depth_is_bounded() -> None:
    assert view("[" * 64 + "]" * 64).json is not None
    assert view("[" * 65 + "]" * 65).json is None
    assert view('{"a":' * 65 + "1" + "}" * 65).json is None
    assert view("[" * 200_000 + "]" * 200_000).json is None  # no RecursionError either
    # brackets inside strings do not count
    assert view(json.dumps(["[" * 100])).json == ["[" * 100]


def test_json_over_512_kib_is_not_parsed_and_the_body_is_cut_to_the_stored_bound() -> None:
    big = json.dumps(["x" * (512 * 1024)])
    assert view(big).json is None
    assert len(view(big).body) == len(big)
    assert len(view("y" * (cel.BODY_MAX + 10)).body) == cel.BODY_MAX
    assert view("y" * (cel.BODY_MAX + 10)).json is None


def test_numbers_beyond_int64_become_doubles_and_lone_surrogates_are_replaced() -> None:
    response = view('{"big": 123456789012345678901234567890, "s": "a\\ud800b"}')
    assert response.json["big"] == pytest.approx(1.2345678901234568e29)
    assert response.json["s"] == "a\ufffdb"
    assert value_of("response.json.big > 1.0e29", response) is True
    assert value_of("response.json.s.size()", response) == 3
    assert value_of("response.body.size() > 0", view("\ud800")) is True


# -- evaluation, conditions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("response.statusCode == 200", True),
        ("response.json.status == 'succeeded'", True),
        ("size(response.body) > 0", True),
        ("response.headers['content-type'].startsWith('application/json')", True),
        ("response.body.endsWith('}') && response.body.contains('items')", True),
        ("response.json.status.matches('^succ')", True),
        ("response.json.items.all(i, i.id > 0)", True),
        ("response.json.items.exists(i, i.id == 2)", True),
        ("response.json.items.exists_one(i, i.id > 0)", False),
        ("has(response.json.status) && !has(response.json.nope)", True),
        ("'status' in response.json && 2 in response.json.items.map(i, i.id)", True),
        ("response.json.nope == 1 || true", True),  # errors are absorbed as CEL says
    ],
)
def test_conditions(text: str, expected: bool) -> None:
    assert cel.condition(cel.compile_condition(text), view()) == (expected, None)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("response.json.nope == 'x'", 'Key not found in map : "nope"'),
        ("response.headers['x-missing'] == ''", "x-missing"),
        ("response.json.items[5].id == 1", "index=5"),
        ("1 / (response.statusCode - 200) > 0", "divide by zero"),
        ("response.json.n.x == 1", "non-message type"),
        ("response.body.matches('[')", "invalid regular expression"),
        ("response.json.status", "the condition gave string, not a bool"),
        ("response.json.items", "the condition gave list, not a bool"),
    ],
)
def test_an_evaluation_error_makes_the_condition_false_with_the_error(text: str, says: str) -> None:
    holds, message = cel.condition(cel.compile_expression(text), view())
    assert holds is False
    assert message is not None
    assert says in message
    assert len(message) <= cel.MESSAGE_MAX


def test_no_json_makes_a_json_condition_false_not_an_exception() -> None:
    holds, message = cel.condition(
        cel.compile_condition("response.json.status == 'ok'"), view("oops")
    )
    assert holds is False
    assert message is not None


# -- the cost bound -------------------------------------------------------------------------


def _list_view(n: int) -> cel.ResponseView:
    return view(json.dumps({"items": [{"id": i} for i in range(n)]}))


def test_a_large_map_is_refused_before_it_runs_and_a_small_one_runs() -> None:
    compiled = cel.compile_expression("response.json.items.map(i, i.id)")
    assert cel.evaluate(compiled, _list_view(500)) == list(range(500))
    holds, message = cel.condition(
        cel.compile_condition("response.json.items.map(i, i.id).size() > 0"), _list_view(5000)
    )
    assert holds is False
    assert message is not None
    assert "cost too much" in message


def test_exists_and_all_over_thousands_of_items_run() -> None:
    response = _list_view(9000)
    assert cel.condition(
        cel.compile_condition("response.json.items.exists(i, i.id == 8999)"), response
    ) == (True, None)


def test_comprehensions_stop_after_10000_iterations() -> None:
    response = view(json.dumps(list(range(10_001))))
    holds, message = cel.condition(
        cel.compile_condition("response.json.exists(i, i < 0)"), response
    )
    assert (holds, message) == (False, "comprehensions may iterate at most 10000 times in all")


@pytest.mark.parametrize(
    "text",
    [
        "(response.body + response.body).contains(response.body + 'b')",
        "response.json.all(i, (response.body + response.body).size() > 0)",
        "response.json.map(i, response.body).size() > 0",
        "response.json.exists(i, string(response.body) == '')",
    ],
)
def test_hostile_expressions_over_a_large_body_are_refused_not_run(text: str) -> None:
    body = json.dumps(["a" * 100] * 2000)  # ~200 KiB
    compiled = cel.compile_expression(text)
    response = view(body)
    assert cel.estimate_cost(compiled, response) > cel.COST_BUDGET
    with pytest.raises(cel.EvaluationError, match="cost too much"):
        cel.evaluate(compiled, response)


def test_the_largest_json_still_evaluates_within_the_budget() -> None:
    zeros = view("[" + ",".join(["0"] * (256 * 1024 - 1)) + "]")
    assert zeros.json is not None
    compiled = cel.compile_condition("size(response.json) > 0")
    assert cel.estimate_cost(compiled, zeros) <= cel.COST_BUDGET
    assert cel.condition(compiled, zeros) == (True, None)


# -- outputs --------------------------------------------------------------------------------


def test_output_strings() -> None:
    assert cel.output_string("as it is") == "as it is"
    assert cel.output_string(3) == "3"
    assert cel.output_string(None) == "null"
    assert cel.output_string(True) == "true"
    assert cel.output_string([1, "a", {"b": None}]) == '[1,"a",{"b":null}]'
    assert cel.output_string(float("nan")) == '"NaN"'
    assert cel.output_string(value_of("b'ab'")) == '"YWI="'
    assert cel.output_string(value_of("duration('1.5s')")) == '"1.5s"'
    assert cel.output_string(value_of("timestamp('2024-01-01T00:00:00Z')")) == (
        '"2024-01-01T00:00:00Z"'
    )
    assert cel.output_string(value_of("int")) == "int"
    assert cel.output_string(value_of("[int]")) == '["int"]'
    assert cel.output_string(value_of("{1: 'one'}")) == '{"1":"one"}'
    assert cel.output_string(value_of("response.json.items.map(i, i.id)")) == "[1,2]"


def test_an_output_is_cut_to_1024_characters_without_serialising_all_of_it() -> None:
    huge = [["x" * 1000] * 1000] * 1000  # a billion characters as JSON
    text = cel.output_string(huge)
    assert len(text) == cel.OUTPUT_MAX
    assert text.endswith(" …")
    assert len(cel.output_string("y" * 5000)) == cel.OUTPUT_MAX


def test_outputs_together_fit_in_4_kib() -> None:
    outputs = cel.render_outputs([(f"out{i}", "<" * 1024) for i in range(16)])
    stored = sum(string_size(k) + string_size(v) + 6 for k, v in outputs.items())
    assert stored <= cel.OUTPUTS_BUDGET
    assert outputs["out0"] == "<" * 1024 or outputs["out0"].endswith(" …")
    small = cel.render_outputs({"hits": 3, "status": "done"})
    assert small == {"hits": "3", "status": "done"}


# -- properties -----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(), children),
    max_leaves=30,
)
EXPRESSIONS = [
    "response.json.status == 'succeeded'",
    "response.json.items.map(i, i.id).size() > 0",
    "response.json.exists(x, x == 1)",
    "response.json[0] == response.json",
    "size(response.json) > 0",
    "response.body.contains('a') || response.json == null",
    "has(response.json.a) && response.json.a.b == 1",
    "response.json",
    "response.json.map(k, k)",
]


@settings(max_examples=150, deadline=None)
@given(body=JSON_VALUES, truncated=st.booleans())
def test_any_json_body_never_raises_out_of_condition_and_outputs_stay_bounded(
    body: Any, truncated: bool
) -> None:
    response = view(json.dumps(body), complete=not truncated)
    values = []
    for text in EXPRESSIONS:
        compiled = cel.compile_expression(text)
        holds, message = cel.condition(compiled, response)
        assert isinstance(holds, bool)
        assert message is None or len(message) <= cel.MESSAGE_MAX
        if message is None:  # it evaluated: its value is an output too
            values.append((text[:20], cel.evaluate(compiled, response)))
    outputs = cel.render_outputs(values)
    assert all(len(v) <= cel.OUTPUT_MAX for v in outputs.values())
    assert sum(string_size(k) + string_size(v) + 6 for k, v in outputs.items()) <= 4096


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300))
def test_any_body_text_never_raises_out_of_condition(text: str) -> None:
    response = cel.response_view(200, {"x-a": text[:10]}, text, True)
    for expression in ("response.body.size() >= 0", "response.json != null"):
        holds, message = cel.condition(cel.compile_condition(expression), response)
        assert isinstance(holds, bool)
        assert message is None or len(message) <= cel.MESSAGE_MAX
