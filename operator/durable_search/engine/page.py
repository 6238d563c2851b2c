"""The joined result page: each provider's stored body, or "No Results", as the sample shows it.

Rendering is a pure function of a Search's ``results`` and its children's stored bodies. The
bodies are third-party HTML passed through as the site sent them; nothing here escapes or
cleans markup. That is safe because they are only ever shown in sandboxed frames: the web
service serves them with ``Content-Security-Policy: sandbox; default-src 'none'`` and its page
loads them into iframes with an empty ``sandbox`` (no script, no same origin); the CLI prints
them as JSON data.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

from durable_search.api.constants import NO_RESULTS_HTML, RESULT_SEPARATOR, Outcome


def output_html(results: Sequence[Mapping[str, Any]], bodies: Mapping[str, str | None]) -> str:
    """The sample's GetResult: each provider's page, or "No Results", joined by ``<hr/>``."""
    return RESULT_SEPARATOR.join(
        provider_html(r, bodies.get(r.get("httpTaskName") or "")) for r in results
    )


def provider_html(result: Mapping[str, Any], body: str | None) -> str:
    if result.get("outcome") == Outcome.SUCCEEDED and body is not None:
        return body
    return NO_RESULTS_HTML


def text_body(child_status: Mapping[str, Any]) -> str | None:
    """A child's stored body when it is text (binary bodies are not pages).

    Markup is often stored as base64 (``http.body``: cheaper than JSON-escaping every ``<``),
    so a base64 body that decodes to UTF-8 text is text too.
    """
    response = child_status.get("response") or {}
    body = response.get("body")
    if body is None or response.get("contentEncoding"):
        return None
    if response.get("encoding", "utf-8") == "utf-8":
        return str(body)
    try:
        raw = base64.b64decode(str(body), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return None if "\x00" in text else text
