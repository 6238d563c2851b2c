"""The body policy: bounded, text cut on a character boundary, base64 for binary."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from durable_search.engine.bounds import string_size
from durable_search.http.body import store_body


def test_text_within_the_cap_is_kept_whole() -> None:
    body = store_body("héllo".encode(), declared_size=None, max_bytes=100, more=False)
    assert (body.text, body.encoding, body.truncated, body.size) == ("héllo", "utf-8", False, 6)


def test_text_is_cut_on_a_character_boundary() -> None:
    raw = "aé€😀".encode()  # 1 + 2 + 3 + 4 bytes
    for cap, expected in [(1, "a"), (2, "a"), (3, "aé"), (5, "aé"), (6, "aé€"), (9, "aé€")]:
        body = store_body(raw, declared_size=None, max_bytes=cap, more=True)
        assert body.text == expected, cap
        assert body.truncated
        assert len(body.text.encode()) <= cap


def test_binary_is_base64_and_bounded() -> None:
    raw = bytes(range(256)) * 4
    body = store_body(raw, declared_size=5 * 1024 * 1024, max_bytes=100, more=True)
    assert body.encoding == "base64"
    assert base64.b64decode(body.text) == raw[:100]
    assert (body.truncated, body.size) == (True, 5 * 1024 * 1024)


def test_invalid_utf8_in_the_middle_is_binary() -> None:
    body = store_body(b"abc\xff\xfeabc", declared_size=None, max_bytes=100, more=False)
    assert body.encoding == "base64"


@given(
    raw=st.binary(max_size=3000), cap=st.integers(min_value=0, max_value=4000), more=st.booleans()
)
def test_any_body_is_kept_as_a_prefix_within_the_cap(raw: bytes, cap: int, more: bool) -> None:
    body = store_body(raw, declared_size=None, max_bytes=cap, more=more)
    kept = body.text.encode() if body.encoding == "utf-8" else base64.b64decode(body.text)
    assert len(kept) <= cap
    assert raw.startswith(kept)
    assert body.truncated == (more or len(raw) > cap)
    if body.encoding == "utf-8":  # no dearer than base64 of the bytes read
        assert string_size(body.text) <= 4 * ((len(raw[:cap]) + 2) // 3)
