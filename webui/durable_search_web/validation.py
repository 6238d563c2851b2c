"""Input checks for the API (pure): every bad input becomes a 400 that says what is wrong."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from durable_search.api.constants import SearchPhase
from durable_search_web.problems import ProblemError

MAX_QUERY = 512
MAX_PROVIDERS = 16
MAX_TOP = 500
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class StartRequest:
    query: str
    providers: tuple[str, ...] = ()
    watcher: bool = True


def parse_query(value: Any) -> str:
    if not isinstance(value, str):
        raise ProblemError(400, '"query" is required and must be a string')
    if not value.strip():
        raise ProblemError(400, '"query" must not be empty')
    if len(value) > MAX_QUERY:
        raise ProblemError(400, f'"query" is longer than {MAX_QUERY} characters')
    return value


def parse_start(payload: Any) -> StartRequest:
    if not isinstance(payload, Mapping):
        raise ProblemError(400, "the body must be a JSON object")
    unknown = set(payload) - {"query", "providers", "watcher"}
    if unknown:
        raise ProblemError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    query = parse_query(payload.get("query"))
    providers = payload.get("providers", [])
    if not isinstance(providers, list):
        raise ProblemError(400, '"providers" must be a list of provider names')
    if len(providers) > MAX_PROVIDERS:
        raise ProblemError(400, f'"providers" lists more than {MAX_PROVIDERS} names')
    for name in providers:
        if not isinstance(name, str):
            raise ProblemError(
                400, '"providers" takes SearchProvider names only, not URLs or objects'
            )
        if not DNS_LABEL.match(name):
            raise ProblemError(
                400, f'"{name[:64]}" is not a SearchProvider name (a DNS-1123 label)'
            )
    watcher = payload.get("watcher", True)
    if not isinstance(watcher, bool):
        raise ProblemError(400, '"watcher" must be true or false')
    return StartRequest(query, tuple(dict.fromkeys(providers)), watcher)


def parse_timeout(raw: str | None, maximum: int) -> float:
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ProblemError(400, "timeoutSeconds must be a number of seconds") from None
    if not 0 <= value <= maximum:
        raise ProblemError(400, f"timeoutSeconds must be between 0 and {maximum}")
    return value


def check_name(name: str) -> str:
    if not OBJECT_NAME.match(name):
        raise ProblemError(404, f"no search {name[:80]!r}")
    return name


@dataclass(frozen=True)
class ListQuery:
    statuses: frozenset[SearchPhase] | None
    created_from: dt.datetime | None
    created_to: dt.datetime | None
    top: int
    after: tuple[str, str] | None  # (creationTimestamp, name) of the last item already sent


def parse_list(params: Mapping[str, str]) -> ListQuery:
    statuses = None
    if params.get("runtimeStatus"):
        try:
            statuses = frozenset(
                SearchPhase(s.strip()) for s in params["runtimeStatus"].split(",") if s.strip()
            )
        except ValueError:
            names = ", ".join(p.value for p in SearchPhase)
            raise ProblemError(400, f"runtimeStatus takes a comma list of: {names}") from None
    top_raw = params.get("top", "100")
    if not top_raw.isdigit() or not 1 <= int(top_raw) <= MAX_TOP:
        raise ProblemError(400, f"top must be an integer from 1 to {MAX_TOP}")
    return ListQuery(
        statuses=statuses,
        created_from=_time_param(params, "createdTimeFrom"),
        created_to=_time_param(params, "createdTimeTo"),
        top=int(top_raw),
        after=decode_continuation(params.get("continuationToken")),
    )


def _time_param(params: Mapping[str, str], name: str) -> dt.datetime | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ProblemError(
            400, f"{name} must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def encode_continuation(created: str, name: str) -> str:
    return base64.urlsafe_b64encode(f"{created}|{name}".encode()).decode().rstrip("=")


def decode_continuation(token: str | None) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        created, name = raw.split("|", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ProblemError(400, "continuationToken is not one this API issued") from None
    return created, name
