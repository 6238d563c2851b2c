"""URL templating: the query arrives intact whatever it contains."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from durable_search.engine.templating import render_url


@pytest.mark.parametrize(
    "query",
    ["café & crème", "a#b", "x=y&z=1", "100% / 50%", "日本語 検索", "+plus+", "?", "'\"<>"],
)
def test_query_round_trips_through_the_url(query: str) -> None:
    url = render_url("https://example.org/search?q={query}&lang=en", query)
    parsed = parse_qs(urlsplit(url).query)
    assert parsed["q"] == [query]
    assert parsed["lang"] == ["en"]


def test_nothing_reserved_is_left_unescaped() -> None:
    url = render_url("https://example.org/{query}", "a/b?c#d&e=f")
    assert url == "https://example.org/a%2Fb%3Fc%23d%26e%3Df"


def test_placeholder_may_appear_more_than_once() -> None:
    assert render_url("http://h/{query}?q={query}", "a b") == "http://h/a%20b?q=a%20b"


def test_a_template_without_placeholder_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\{query\}"):
        render_url("https://example.org/search", "x")


@given(st.text(min_size=1, max_size=512))
def test_any_query_round_trips_and_leaves_nothing_reserved_unescaped(query: str) -> None:
    url = render_url("https://example.org/search?q={query}&lang=en", query)
    assert parse_qs(urlsplit(url).query, keep_blank_values=True)["q"] == [query]
    encoded = url.split("q=", 1)[1].split("&lang=", 1)[0]
    assert all(ch.isascii() and (ch.isalnum() or ch in "-._~%") for ch in encoded)
