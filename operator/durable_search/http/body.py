"""The body policy: text cut on a character boundary, base64 for the rest, ``truncated`` recorded.

Whatever a site sends, at most ``max_body_bytes`` of it is kept. A body is stored as text when
it is UTF-8 and as cheap to store as its base64 form; otherwise as base64. The second rule
matters because the API server escapes ``<``, ``>``, ``&`` and control characters in six bytes
each: 256 KiB of control characters is 1.5 MiB as JSON text, and 342 KiB as base64. A body
kept in a content-coding we did not decode is binary by definition.
"""

from __future__ import annotations

import base64
import codecs

from durable_search.engine.bounds import string_size
from durable_search.engine.httptask import StoredBody


def store_body(
    raw: bytes,
    *,
    declared_size: int | None,
    max_bytes: int,
    more: bool,
    undecoded: str | None = None,
) -> StoredBody:
    """``raw`` is what was read (at most ``max_bytes``); ``more`` says the server sent more."""
    kept = raw[:max_bytes]
    truncated = more or len(raw) > max_bytes
    size = max(declared_size or 0, len(raw))
    text = None if undecoded else _utf8_prefix(kept, complete=not truncated)
    if text is not None and string_size(text) <= _base64_size(len(kept)):
        return StoredBody(text=text, encoding="utf-8", size=size, truncated=truncated)
    return StoredBody(
        text=base64.b64encode(kept).decode("ascii"),
        encoding="base64",
        size=size,
        truncated=truncated,
        content_encoding=undecoded,
    )


def _base64_size(length: int) -> int:
    return 4 * ((length + 2) // 3)


def _utf8_prefix(data: bytes, *, complete: bool) -> str | None:
    """``data`` as text when it is UTF-8 (a sequence cut by truncation is dropped), else None."""
    if b"\x00" in data:
        return None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:
        # final=False holds back a trailing partial sequence instead of failing on it.
        text = decoder.decode(data, final=complete)
    except UnicodeDecodeError:
        return None
    return text
