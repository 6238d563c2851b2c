"""The HttpTask state machine with CEL: successCondition, outputs, completeWhen, checks first."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest

from durable_search.api.models import HttpTaskSpec, ProviderSpec, SearchSpec
from durable_search.engine import httptask as engine
from durable_search.engine import judging, page
from durable_search.engine.fanout import SearchRef, child_manifest

CREATED = dt.datetime(2026, 11, 26, 8, 0, 0, tzinfo=dt.UTC)
URL = "https://site.example/search?q=x"
MONITOR = "https://site.example/operations/7"


def spec(**overrides: Any) -> HttpTaskSpec:
    raw: dict[str, Any] = {"request": {"url": URL}, "deadlineSeconds": 60}
    raw.update(overrides)
    return HttpTaskSpec.parse(raw)


def at(seconds: float) -> dt.datetime:
    return CREATED + dt.timedelta(seconds=seconds)


def answer(
    code: int = 200,
    body: Any = None,
    *,
    location: str | None = None,
    headers: dict[str, str] | None = None,
    encoding: str = "utf-8",
) -> engine.HttpAnswer:
    text = body if isinstance(body, str) else json.dumps(body if body is not None else {})
    if encoding == "base64":
        text = base64.b64encode(text.encode()).decode()
    return engine.HttpAnswer(
        status_code=code,
        reason="",
        headers={"content-type": "application/json"},
        body=engine.StoredBody(text, encoding, len(text), False),
        location=location,
        seen_headers=headers or {},
    )


def step(
    task: HttpTaskSpec, status: dict[str, Any], now: float, result: engine.HttpAnswer
) -> tuple[engine.Send, dict[str, Any]]:
    decision = engine.decide(task, status, CREATED, at(now))
    assert isinstance(decision, engine.Send), decision
    exchange = engine.Exchange(result=result, url=decision.url, started=at(now), duration_ms=5)
    return decision, dict(engine.after_exchange(task, status, CREATED, decision, exchange, at(now)))


def condition_of(status: dict[str, Any]) -> dict[str, Any]:
    return dict(status["conditions"][0])


# -- checked before the first request -------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"successCondition": "response.json.hits >"}, "spec.successCondition"),
        ({"successCondition": "response.statusCode"}, "spec.successCondition"),
        ({"outputs": [{"name": "hits", "expression": "nope(1)"}]}, "spec.outputs[hits]"),
        ({"async": {"completeWhen": "response.bodyy == ''"}}, "spec.async.completeWhen"),
        (
            {"successCondition": "[[1]].all(a, a.all(b, b > 0))"},
            "spec.successCondition",
        ),
    ],
)
def test_an_expression_that_does_not_compile_ends_the_task_invalid_before_any_request(
    fields: dict[str, Any], where: str
) -> None:
    decision = engine.decide(spec(**fields), {}, CREATED, at(0))
    assert isinstance(decision, engine.Finish), decision
    status = decision.status
    assert (status["phase"], status["outcome"]) == ("Failed", "Invalid")
    condition = condition_of(dict(status))
    assert (condition["status"], condition["reason"]) == ("False", "InvalidExpression")
    assert where in status["message"]
    assert "attemptLog" not in status


# -- successCondition -----------------------------------------------------------------------


def test_a_success_condition_on_the_body_that_holds_is_succeeded() -> None:
    task = spec(successCondition="response.json.hits > 0")
    _, status = step(task, {}, 0, answer(200, {"hits": 3}))
    assert (status["phase"], status["outcome"]) == ("Succeeded", "Succeeded")
    assert condition_of(status)["status"] == "True"


def test_a_success_condition_that_is_false_is_condition_not_met_and_not_retried() -> None:
    task = spec(successCondition="response.json.hits > 0")
    _, status = step(task, {}, 0, answer(200, {"hits": 0}))
    assert (status["phase"], status["outcome"]) == ("Succeeded", "ConditionNotMet")
    assert condition_of(status)["reason"] == "ConditionNotMet"
    assert "successCondition is false" in status["message"]
    assert status["attempts"] == 1
    assert engine.decide(task, status, CREATED, at(1)) == engine.Done()


def test_a_condition_that_cannot_be_evaluated_is_false_with_the_error_in_the_message() -> None:
    task = spec(successCondition="response.json.hits > 0")
    _, status = step(task, {}, 0, answer(200, {"total": 1}))
    assert status["outcome"] == "ConditionNotMet"
    assert "successCondition could not be evaluated" in status["message"]
    assert "hits" in status["message"]


def test_without_a_condition_the_samples_rule_holds_unchanged() -> None:
    _, status = step(spec(), {}, 0, answer(404, "gone"))
    assert status["outcome"] == "HttpError"
    _, status = step(spec(), {}, 0, answer(200, "page"))
    assert status["outcome"] == "Succeeded"


def test_a_condition_may_accept_what_the_samples_rule_would_not() -> None:
    task = spec(successCondition="response.statusCode == 404")
    _, status = step(task, {}, 0, answer(404, "gone"))
    assert status["outcome"] == "Succeeded"


def test_retryable_codes_are_retried_before_the_condition_judges_the_final_answer() -> None:
    task = spec(
        successCondition="response.json.ok",
        retry={"maxAttempts": 2, "initialIntervalSeconds": 1},
    )
    _, status = step(task, {}, 0, answer(503, {"ok": False}))
    assert status["phase"] == "Running"
    _, status = step(task, status, 2, answer(200, {"ok": True}))
    assert (status["outcome"], status["attempts"]) == ("Succeeded", 2)


def test_a_utf8_body_stored_as_base64_is_seen_as_its_text() -> None:
    task = spec(successCondition="response.body.contains('<b>') && response.json == null")
    _, status = step(task, {}, 0, answer(200, "<b>hit</b>", encoding="base64"))
    assert status["outcome"] == "Succeeded"


def test_headers_are_seen_by_their_lower_case_names() -> None:
    task = spec(successCondition="response.headers['x-total'] == '3'")
    _, status = step(task, {}, 0, answer(200, "", headers={"x-total": "3"}))
    assert status["outcome"] == "Succeeded"


# -- outputs --------------------------------------------------------------------------------


def test_outputs_are_strings_as_is_and_anything_else_compact_json() -> None:
    task = spec(
        outputs=[
            {"name": "title", "expression": "response.json.items[0].title"},
            {"name": "hits", "expression": "response.json.hits"},
            {"name": "ids", "expression": "response.json.items.map(i, i.id)"},
            {"name": "code", "expression": "response.statusCode"},
        ]
    )
    body = {"hits": 2, "items": [{"id": 1, "title": "Café"}, {"id": 2, "title": "b"}]}
    _, status = step(task, {}, 0, answer(200, body))
    assert status["outputs"] == {"title": "Café", "hits": "2", "ids": "[1,2]", "code": "200"}
    summary = engine.result_summary(status)
    assert summary["outputs"] == status["outputs"]


def test_outputs_are_recorded_when_the_condition_is_not_met_too() -> None:
    task = spec(
        successCondition="response.json.hits > 0",
        outputs=[{"name": "hits", "expression": "response.json.hits"}],
    )
    _, status = step(task, {}, 0, answer(200, {"hits": 0}))
    assert (status["outcome"], status["outputs"]) == ("ConditionNotMet", {"hits": "0"})


def test_an_output_that_fails_is_left_out_and_named_in_the_message() -> None:
    task = spec(
        outputs=[
            {"name": "missing", "expression": "response.json.nope"},
            {"name": "ok", "expression": "'yes'"},
        ]
    )
    _, status = step(task, {}, 0, answer(200, {"hits": 1}))
    assert status["outcome"] == "Succeeded"
    assert status["outputs"] == {"ok": "yes"}
    assert "output missing:" in status["message"]


def test_outputs_are_cut_at_1024_characters_each_and_4_kib_in_all() -> None:
    task = spec(
        outputs=[{"name": f"o{i}", "expression": "response.body"} for i in range(6)],
    )
    _, status = step(task, {}, 0, answer(200, "x" * 5000))
    values = status["outputs"]
    assert all(len(v) <= 1024 for v in values.values())
    assert values["o0"].endswith(" …")
    assert sum(len(k) + len(v) + 6 for k, v in values.items()) <= 4096
    assert len(values) < 6
    assert "left out" in status["message"]


def test_a_provider_whose_condition_is_not_met_shows_no_results() -> None:
    result = {"name": "p", "httpTaskName": "t", "outcome": "ConditionNotMet"}
    assert page.provider_html(result, "<p>page</p>") == "<h1>No Results</h1>"


# -- async: locationHeaders and completeWhen ------------------------------------------------


def test_a_202_with_operation_location_then_running_then_succeeded() -> None:
    task = spec(
        **{
            "async": {
                "locationHeaders": ["Operation-Location", "Location"],
                "completeWhen": "response.json.status == 'succeeded'",
                "minPollIntervalSeconds": 1,
            }
        },
    )
    assert task.async_.location_headers == ("operation-location", "location")
    _, status = step(task, {}, 0, answer(202, {}, location="/operations/7"))
    assert (status["phase"], status["location"], status["pollCount"]) == (
        "Polling",
        MONITOR,
        1,
    )
    sent, status = step(task, status, 1, answer(200, {"status": "running"}))
    assert (sent.kind, sent.url) == (engine.ActionKind.POLL, MONITOR)
    assert (status["phase"], status["location"], status["pollCount"]) == (
        "Polling",
        MONITOR,
        2,
    )
    assert "completeWhen is false" in status["message"]
    sent, status = step(task, status, 2, answer(200, {"status": "succeeded"}))
    assert sent.url == MONITOR
    assert (status["phase"], status["outcome"]) == ("Succeeded", "Succeeded")


def test_a_200_with_status_monitor_is_polled_on_the_request_url_itself() -> None:
    task = spec(**{"async": {"completeWhen": "response.json.done"}})
    _, status = step(task, {}, 0, answer(200, {"done": False}))
    assert (status["phase"], status["location"]) == ("Polling", URL)
    sent, status = step(task, status, 1, answer(200, {"done": True}))
    assert (sent.kind, sent.url) == (engine.ActionKind.POLL, URL)
    assert status["outcome"] == "Succeeded"


def test_without_complete_when_a_2xx_is_final_as_before() -> None:
    _, status = step(spec(), {}, 0, answer(200, {"status": "running"}))
    assert status["phase"] == "Succeeded"


def test_a_post_with_nothing_to_poll_is_final_and_its_completion_not_met() -> None:
    task = spec(
        request={"url": URL, "method": "POST"},
        **{"async": {"completeWhen": "response.json.done"}},
    )
    _, status = step(task, {}, 0, answer(200, {"done": False}))
    assert (status["phase"], status["outcome"]) == ("Succeeded", "ConditionNotMet")
    assert "nothing to poll" in status["message"]


def test_a_complete_when_that_fails_to_evaluate_means_still_running_with_the_error() -> None:
    task = spec(**{"async": {"completeWhen": "response.json.state == 'done'", "maxPolls": 2}})
    _, status = step(task, {}, 0, answer(200, {"other": 1}))
    assert status["phase"] == "Polling"
    assert "completeWhen could not be evaluated" in status["message"]
    _, status = step(task, status, 1, answer(200, {"other": 1}))
    _, status = step(task, status, 2, answer(200, {"other": 1}))
    assert (status["phase"], status["outcome"]) == ("Failed", "TimedOut")
    assert "still running after 2 polls" in status["message"]


def test_a_202_naming_no_status_url_is_polled_only_when_complete_when_says_so() -> None:
    _, status = step(spec(), {}, 0, answer(202, {"status": "running"}))
    assert (status["phase"], status["outcome"]) == ("Succeeded", "HttpError")
    task = spec(**{"async": {"completeWhen": "response.statusCode == 200"}})
    _, status = step(task, {}, 0, answer(202, {"status": "running"}))
    assert (status["phase"], status["location"]) == ("Polling", URL)


def test_complete_when_is_not_asked_when_async_is_disabled() -> None:
    task = spec(**{"async": {"enabled": False, "completeWhen": "false"}})
    _, status = step(task, {}, 0, answer(200, {}))
    assert status["outcome"] == "Succeeded"


# -- judging and the fan-out ----------------------------------------------------------------


def test_binary_bodies_are_seen_as_base64_and_never_as_json() -> None:
    raw = base64.b64encode(b"\x00\xff{}").decode()
    assert judging.body_text(raw, "base64", False, None) == (raw, False)
    assert judging.body_text("{}", "base64", False, "br") == ("{}", False)
    assert judging.body_text("{}", "utf-8", True, None) == ("{}", False)


def test_a_providers_expressions_become_its_tasks_fields() -> None:
    provider = ProviderSpec.parse(
        "p",
        {
            "url": "http://p/?q={query}",
            "successCondition": "response.json.hits > 0",
            "outputs": [{"name": "hits", "expression": "response.json.hits"}],
            "async": {"locationHeaders": ["Operation-Location"], "completeWhen": "true"},
        },
    )
    manifest = child_manifest(
        SearchRef("s", "ns", "uid"), SearchSpec(query="q"), provider, started=CREATED, now=CREATED
    )
    task = HttpTaskSpec.parse(manifest["spec"])
    assert task.success_condition == "response.json.hits > 0"
    assert [(o.name, o.expression) for o in task.outputs] == [("hits", "response.json.hits")]
    assert task.async_.location_headers == ("operation-location",)
    assert task.async_.complete_when == "true"
    plain = child_manifest(
        SearchRef("s", "ns", "uid"),
        SearchSpec(query="q"),
        ProviderSpec.parse("p", {"url": "http://p/?q={query}"}),
        started=CREATED,
        now=CREATED,
    )
    assert not {"successCondition", "outputs", "async"} & set(plain["spec"])


async def test_the_executor_names_the_status_url_from_the_first_location_header_present() -> None:
    from durable_search.api.models import ResponsePolicy
    from durable_search.http.executor import RequestHeader, perform
    from tests.unit.test_executor import SECRET, FakeClient, request, response

    headers = [
        ("Location", "/elsewhere"),
        ("Operation-Location", "/operations/7"),
        ("Set-Cookie", "session=1"),
        ("X-Echo", SECRET),
    ]
    client = FakeClient({URL: response(202, headers=headers)})
    exchange = await perform(
        client,
        request(URL, RequestHeader("X-Api-Key", SECRET, secret=True)),
        timeout=5,
        max_redirects=5,
        response_policy=ResponsePolicy(),
        clock=lambda: CREATED,
        location_headers=("azure-asyncoperation", "operation-location", "location"),
    )
    result = exchange.result
    assert isinstance(result, engine.HttpAnswer)
    assert result.location == "/operations/7"
    assert "set-cookie" not in result.seen_headers
    assert result.seen_headers["x-echo"] == "[redacted]"
    assert result.seen_headers["operation-location"] == "/operations/7"


def test_the_web_refuses_a_provider_whose_expression_does_not_compile_with_the_reason() -> None:
    from durable_search_web.problems import ProblemError
    from durable_search_web.validation import check_provider_expressions

    good = {
        "url": "http://p/?q={query}",
        "successCondition": "response.json.hits > 0",
        "outputs": [{"name": "hits", "expression": "response.json.hits"}],
        "async": {"completeWhen": "response.json.status == 'succeeded'"},
    }
    check_provider_expressions("p", good)
    check_provider_expressions("plain", {"url": "http://p/?q={query}"})
    for bad in (
        {**good, "successCondition": "response.json.hits >"},
        {**good, "outputs": [{"name": "hits", "expression": "nope()"}]},
        {**good, "async": {"completeWhen": "'not a bool'"}},
    ):
        with pytest.raises(ProblemError) as raised:
            check_provider_expressions("p", bad)
        assert raised.value.status == 400
        assert "InvalidExpression" in raised.value.detail
        assert "spec." in raised.value.detail


def test_one_answers_evaluations_share_one_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    from durable_search.engine import cel

    expression = "response.json.items.map(i, i.id)"
    answered = answer(200, {"items": [{"id": i} for i in range(200)]})
    cost = cel.estimate_cost(cel.compile_expression(expression), answered.view())
    monkeypatch.setattr(judging, "ANSWER_BUDGET", cost * 3 // 2)
    task = spec(
        outputs=[
            {"name": "first", "expression": expression},
            {"name": "again", "expression": expression},
        ]
    )
    _, status = step(task, {}, 0, answered)
    assert list(status["outputs"]) == ["first"]
    assert (
        "output again: this answer's expressions together could cost too much"
        in (status["message"])
    )


def test_every_expression_in_the_examples_compiles() -> None:
    from pathlib import Path

    import yaml

    examples = Path(__file__).resolve().parents[2] / "manifests" / "examples"
    checked = 0
    for path in sorted(examples.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not document or "spec" not in document:
                continue  # a Secret or ConfigMap an example refers to
            kind, raw = document["kind"], document["spec"]
            if kind == "HttpTask":
                checked += len(judging.compile_spec(HttpTaskSpec.parse(raw)).outputs) + 1
            elif kind == "SearchProvider":
                judging.compile_provider(ProviderSpec.parse("p", raw))
                checked += len(raw.get("outputs", ())) + ("successCondition" in raw)
    assert checked >= 4


def test_the_terminal_shows_outputs_and_the_new_outcomes() -> None:
    from durable_search.commands.progress import provider_state

    line = provider_state(
        {"outcome": "Succeeded", "statusCode": 200, "outputs": {"hits": "3", "long": "x" * 100}},
        None,
    )
    assert "✔ Succeeded 200" in line and "hits=3" in line
    assert f"long={'x' * 59}…" in line
    assert provider_state({"outcome": "ConditionNotMet", "message": "m"}, None).startswith("∅")
    assert provider_state({"outcome": "Invalid"}, None).startswith("!")
