"""Sizes as the API server stores them, and the bounds that keep every status writable.

A site decides what it answers; the status that records the answer must still be one the API
server accepts (durability invariant 6). Two things make that harder than counting characters:

- the CRD schema bounds strings in *characters*, while the API's limit (1.5 MiB per object in
  etcd) is in *bytes of JSON*;
- the API server writes JSON with Go's ``encoding/json``, which escapes ``<``, ``>``, ``&``,
  U+2028, U+2029 and control characters as six-byte ``\\uXXXX`` sequences: 512 KiB of ``<``
  is 3 MiB once stored.

So every string from a site is cut to its schema bound, and the whole status is measured with
:func:`go_json_size` and fitted into a budget (:func:`fit_status`) before it is written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from durable_search.api.status import HeaderRecord, HttpTaskStatus, ResponseRecord

# Schema bounds (characters) of the strings a site can influence; api.schema uses the same.
MESSAGE_MAX = 1024
LAST_ERROR_MAX = 1024
LOG_ERROR_MAX = 512
LOCATION_MAX = 8192
HEADER_VALUE_MAX = 8192
# Bytes, as stored: the kept headers together, a status, and an object.
HEADERS_BUDGET = 64 * 1024
STATUS_BUDGET = 1024 * 1024
OBJECT_LIMIT = 1536 * 1024
# Room left for metadata growth (managedFields entries, annotations) beside spec and status.
OBJECT_MARGIN = 64 * 1024

_SIX_BYTE_ESCAPES = "<>&"  # one byte each, written as \u003c \u003e \u0026
_LINE_SEPARATORS = "\u2028\u2029"  # three bytes each, written as \u2028 \u2029
_TRUNCATION = " …"


def go_json_size(value: Any) -> int:
    """Bytes of ``value`` as JSON written by Go's ``encoding/json`` (HTML escaping on).

    Python's compact ``json.dumps`` without ASCII escaping matches Go byte for byte except for
    the HTML-safe escapes Go adds, which are counted here.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    extra = sum(text.count(ch) for ch in _SIX_BYTE_ESCAPES) * 5
    extra += sum(text.count(ch) for ch in _LINE_SEPARATORS) * 3
    return len(text.encode("utf-8", "surrogatepass")) + extra


def string_size(text: str) -> int:
    """Bytes ``text`` takes as a stored JSON string, quotes excluded."""
    return go_json_size(text) - 2


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, with a visible mark when it was cut."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(_TRUNCATION), 0)] + _TRUNCATION


def cut_to_size(text: str, size: int) -> str:
    """The longest prefix of ``text`` whose stored size is at most ``size`` bytes."""
    if string_size(text) <= size:
        return text
    low, high = 0, len(text)
    while low < high:  # the largest n with string_size(text[:n]) <= size
        middle = (low + high + 1) // 2
        if string_size(text[:middle]) <= size:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def status_budget(object_without_status: Mapping[str, Any]) -> int:
    """What a status may take so that the whole object stays below the API's limit."""
    room = OBJECT_LIMIT - OBJECT_MARGIN - go_json_size(object_without_status)
    return max(min(STATUS_BUDGET, room), 0)


def fit_headers(headers: list[HeaderRecord]) -> list[HeaderRecord]:
    """Kept headers within :data:`HEADERS_BUDGET` bytes; later ones are cut, then dropped."""
    fitted: list[HeaderRecord] = []
    room = HEADERS_BUDGET
    for header in headers:
        name = header["name"]
        value = cut(header["value"], HEADER_VALUE_MAX)
        overhead = string_size(name) + 24
        if room <= overhead:
            break
        value = cut_to_size(value, room - overhead)
        fitted.append({"name": name, "value": value})
        room -= overhead + string_size(value)
    return fitted


def fit_status(status: HttpTaskStatus, budget: int) -> HttpTaskStatus:
    """``status`` within ``budget`` stored bytes: the response body gives way first.

    Everything else in a status is bounded by the schema and small; only the body can be
    large, so it is cut (``truncated: true``) to what is left. A status that still does not fit
    loses the body and the kept headers altogether.
    """
    size = go_json_size(status)
    response = status.get("response")
    if size <= budget or response is None:
        return status
    body = str(response.get("body") or "")
    without_body = size - string_size(body)
    room = budget - without_body
    fitted = ResponseRecord(**response)
    fitted["truncated"] = True
    if room <= 0:
        fitted["body"], fitted["headers"] = "", []
    elif response.get("encoding") == "base64":
        fitted["body"] = body[: (room // 4) * 4]  # whole base64 quanta: still valid base64
    else:
        fitted["body"] = cut_to_size(body, room)
    new = HttpTaskStatus(**status)
    new["response"] = fitted
    return new
