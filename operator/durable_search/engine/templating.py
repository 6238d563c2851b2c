"""URL templating: ``{query}`` becomes the query percent-encoded as UTF-8, nothing left unescaped.

The original sample concatenated the raw query into the URL, so ``&``, ``#`` or ``=`` in a
query changed which site parameters were sent. ``quote(query, safe='')`` escapes every reserved
character, including ``/``.
"""

from __future__ import annotations

from urllib.parse import quote

PLACEHOLDER = "{query}"


def render_url(template: str, query: str) -> str:
    if PLACEHOLDER not in template:
        raise ValueError(f"provider URL must contain {PLACEHOLDER}: {template!r}")
    return template.replace(PLACEHOLDER, quote(query, safe=""))
