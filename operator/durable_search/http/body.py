"""The body policy: text cut on a character boundary, base64 for binary, ``truncated`` recorded.

Whatever a site sends, at most ``max_body_bytes`` of it is kept, which is what bounds an
HttpTask's size (the schema caps ``maxBodyBytes`` well below the API's 1.5 MiB object limit,
base64's 4/3 growth included).
"""

from __future__ import annotations

import base64
import codecs

from durable_search.engine.httptask import StoredBody


def store_body(raw: bytes, *, declared_size: int | None, max_bytes: int, more: bool) -> StoredBody:
    """``raw`` is what was read (at most ``max_bytes``); ``more`` says the server sent more."""
    kept = raw[:max_bytes]
    truncated = more or len(raw) > max_bytes
    size = max(declared_size or 0, len(raw))
    text = _utf8_prefix(kept, complete=not truncated)
    if text is not None:
        return StoredBody(text=text, encoding="utf-8", size=size, truncated=truncated)
    return StoredBody(
        text=base64.b64encode(kept).decode("ascii"),
        encoding="base64",
        size=size,
        truncated=truncated,
    )


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
