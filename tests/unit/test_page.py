"""The joined result page: each provider's stored body, or "No Results", joined by ``<hr/>``."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from durable_search.api.constants import NO_RESULTS_HTML, Outcome
from durable_search.engine.page import output_html, provider_html, text_body

A, B, C = "s1-a-0f3c", "s1-b-0f3c", "s1-c-0f3c"  # children's names, not the providers'


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def test_output_joins_pages_and_no_results_with_hr() -> None:
    results = [
        {"name": "a", "httpTaskName": A, "outcome": "Succeeded"},
        {"name": "b", "httpTaskName": B, "outcome": "HttpError"},
        {"name": "c", "httpTaskName": C, "outcome": "TransportError"},
    ]
    html = output_html(results, {A: "<p>A</p>", B: "<p>404 page</p>"})
    assert html == "<p>A</p><hr/><h1>No Results</h1><hr/><h1>No Results</h1>"


def test_a_providers_page_is_its_own_childs_body_looked_up_by_the_childs_name() -> None:
    results = [
        {"name": "a", "httpTaskName": A, "outcome": "Succeeded"},
        {"name": "b", "httpTaskName": B, "outcome": "Succeeded"},
    ]
    assert output_html(results, {A: "<p>A</p>", B: "<p>B</p>"}) == "<p>A</p><hr/><p>B</p>"
    # A body stored under the provider's name, or another child's, is not this provider's page.
    assert output_html(results[:1], {"a": "<p>A</p>", B: "<p>B</p>"}) == NO_RESULTS_HTML


@pytest.mark.parametrize("outcome", [o for o in Outcome if o != Outcome.SUCCEEDED] + [None])
def test_a_provider_that_did_not_succeed_shows_no_results_even_with_a_body(
    outcome: Outcome | None,
) -> None:
    result: dict[str, Any] = {"name": "a", "httpTaskName": A, "outcome": outcome}
    assert provider_html(result, "<p>an error page</p>") == NO_RESULTS_HTML


def test_a_succeeded_provider_without_a_stored_body_shows_no_results() -> None:
    result = {"name": "a", "httpTaskName": A, "outcome": "Succeeded"}
    assert provider_html(result, None) == NO_RESULTS_HTML
    assert output_html([result], {}) == NO_RESULTS_HTML


def test_a_succeeded_providers_markup_is_passed_through_unescaped() -> None:
    # Safe only because pages are shown in sandboxed frames; nothing here cleans markup.
    page = '<script>alert("x")</script><a href="?q=a&b">&amp;</a>'
    assert provider_html({"outcome": "Succeeded"}, page) == page


def test_binary_bodies_are_not_pages() -> None:
    assert text_body({"response": {"body": "AAEC", "encoding": "base64"}}) is None
    assert text_body({"response": {"body": "<p/>", "encoding": "utf-8"}}) == "<p/>"


def test_a_body_without_an_encoding_is_text() -> None:
    assert text_body({"response": {"body": "<p>page</p>"}}) == "<p>page</p>"


def test_a_base64_body_that_decodes_to_utf8_text_is_that_text() -> None:
    page = "<p>héllo wörld 日本</p>"
    stored = {"response": {"body": b64(page.encode()), "encoding": "base64"}}
    assert text_body(stored) == page


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b64(b"\xff\xfe<p>"), id="not-utf8"),
        pytest.param(b64(b"<p>\x00</p>"), id="utf8-with-nul"),
        pytest.param("aGk=*", id="not-strict-base64"),  # leniently decoded it reads "hi"
    ],
)
def test_a_base64_body_that_is_not_text_is_not_a_page(body: str) -> None:
    assert text_body({"response": {"body": body, "encoding": "base64"}}) is None


def test_a_content_encoded_body_is_not_a_page() -> None:
    stored = {"response": {"body": "<p>page</p>", "encoding": "utf-8", "contentEncoding": "gzip"}}
    assert text_body(stored) is None


@pytest.mark.parametrize("status", [{}, {"response": None}, {"response": {"statusCode": 204}}])
def test_a_child_without_a_stored_body_has_no_page(status: dict[str, Any]) -> None:
    assert text_body(status) is None
