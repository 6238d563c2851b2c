"""Input checks for the API (pure): every bad input becomes a 4xx that says what is wrong.

Each check accepts exactly what ``/api/openapi.json`` documents and nothing else, so the
reference is true both ways (the fuzz test holds us to it). Numbers and names are matched with
ASCII patterns, never ``str.isdigit``/``int``/``float`` alone: those take '²', fullwidth and
Arabic-Indic digits and '1_0', and fail with a ValueError (a 500) on 5,000 digits. JSON bodies
are parsed with a guard on their depth (a 16 KiB body of ``[`` is 16,000 levels deep).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from durable_search.api.constants import Reason, SearchPhase
from durable_search.api.models import ProviderSpec
from durable_search.engine import cel, judging
from durable_search.engine.management import PurgeFilter, StartInput, terminate_reason_problem
from durable_search_web.problems import ProblemError

MAX_QUERY = 512
MAX_PROVIDERS = 16
MAX_TOP = 500
DEFAULT_TOP = 100
MAX_JSON_DEPTH = 32  # a start request is two levels deep
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
# The same patterns, as the OpenAPI document states them (JSON Schema patterns are unanchored).
DNS_LABEL_PATTERN = f"^{DNS_LABEL.pattern}$"
OBJECT_NAME_PATTERN = f"^{OBJECT_NAME.pattern}$"
QUERY_PATTERN = r"\S"  # at least one character that is not white space
NUMBER = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?([eE][-+]?[0-9]{1,3})?")
INTEGER = re.compile(r"[0-9]{1,9}")
RFC3339 = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt](?P<hms>[0-9]{2}:[0-9]{2}):(?P<s>[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]+))?(?P<zone>[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_PHASES = "|".join(p.value for p in SearchPhase)
RUNTIME_STATUS_PATTERN = f"^({_PHASES})(,({_PHASES}))*$"
_RUNTIME_STATUS = re.compile(RUNTIME_STATUS_PATTERN[1:-1])
# A continuation token names the last item sent: its creationTimestamp, compacted, and name.
CONTINUATION_PATTERN = r"^[0-9]{8}T[0-9]{6}Z\.[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_CONTINUATION = re.compile(
    r"(?P<y>[0-9]{4})(?P<mo>[0-9]{2})(?P<d>[0-9]{2})T(?P<h>[0-9]{2})(?P<mi>[0-9]{2})"
    r"(?P<s>[0-9]{2})Z\.(?P<name>" + OBJECT_NAME.pattern + ")"
)


# What a start request asks for (decided with the CLI in durable_search.engine.management).
StartRequest = StartInput


# -- bodies ---------------------------------------------------------------------------------


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` nests arrays/objects deeper than ``limit`` (strings skipped)."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """The body as JSON: UTF-8 (RFC 8259), no NaN or Infinity, at most MAX_JSON_DEPTH deep."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProblemError(400, "the body is not UTF-8") from None
    if json_depth_exceeds(text, MAX_JSON_DEPTH):
        raise ProblemError(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        raise ProblemError(400, "the body is not valid JSON") from None


def parse_query(value: Any) -> str:
    if not isinstance(value, str):
        raise ProblemError(400, '"query" is required and must be a string')
    if not re.search(QUERY_PATTERN, value):
        raise ProblemError(400, '"query" must not be empty')
    if len(value) > MAX_QUERY:
        raise ProblemError(400, f'"query" is longer than {MAX_QUERY} characters')
    return value


def parse_start(payload: Any) -> StartRequest:
    if not isinstance(payload, Mapping):
        raise ProblemError(400, "the body must be a JSON object")
    unknown = set(payload) - {"query", "providers", "watcher"}
    if unknown:
        names = ", ".join(sorted(name[:64] for name in unknown)[:10])
        raise ProblemError(400, f"unknown field(s): {names}")
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
        if not DNS_LABEL.fullmatch(name):
            raise ProblemError(
                400, f"{name[:64]!r} is not a SearchProvider name (a DNS-1123 label)"
            )
    watcher = payload.get("watcher", True)
    if not isinstance(watcher, bool):
        raise ProblemError(400, '"watcher" must be true or false')
    return StartRequest(query, tuple(dict.fromkeys(providers)), watcher)


def check_provider_expressions(name: str, spec: Mapping[str, Any]) -> None:
    """A provider's CEL (successCondition, outputs, async.completeWhen) compiles, or a 400.

    The operator would end that provider ``Invalid`` (``InvalidExpression``) before sending
    anything; the start is refused instead, with the same message, as an unknown name is.
    """
    try:
        judging.compile_provider(ProviderSpec.parse(name, spec))
    except cel.InvalidExpression as error:
        raise ProblemError(
            400,
            f"provider {name[:64]!r} has an expression that does not compile "
            f"({Reason.INVALID_EXPRESSION}): {error.message}",
        ) from None
    except (KeyError, TypeError, ValueError):
        return  # not ours to judge: the schema vouches for the rest


# -- parameters -----------------------------------------------------------------------------


def parse_timeout(raw: str | None, maximum: int, name: str = "timeoutSeconds") -> float:
    if raw is None:
        return 0.0
    if not NUMBER.fullmatch(raw):
        raise ProblemError(400, f"{name} must be a number of seconds")
    value = float(raw)
    if not 0 <= value <= maximum:
        raise ProblemError(400, f"{name} must be between 0 and {maximum}")
    return value


def check_new_id(name: str) -> str:
    """A client-chosen Search id (``PUT``): a DNS-1123 label, so it is also a label value."""
    if not DNS_LABEL.fullmatch(name):
        raise ProblemError(
            400,
            f"{name[:80]!r} is not a valid id: a DNS-1123 label (at most 63 lower-case letters, "
            "digits and '-', starting and ending with a letter or digit)",
        )
    return name


def parse_terminate_reason(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    problem = terminate_reason_problem(raw)
    if problem:
        raise ProblemError(400, problem)
    return raw


def parse_purge(params: Mapping[str, str]) -> PurgeFilter:
    """A purge's filter: the list's own filters, at least one of them."""
    filters = ("runtimeStatus", "createdTimeFrom", "createdTimeTo")
    listed = parse_list({k: params[k] for k in filters if k in params})
    selection = PurgeFilter(listed.statuses, listed.created_from, listed.created_to)
    if selection.empty:
        raise ProblemError(
            400, "a purge needs at least one filter: runtimeStatus, createdTimeFrom, createdTimeTo"
        )
    return selection


def is_object_name(name: Any) -> bool:
    return isinstance(name, str) and OBJECT_NAME.fullmatch(name) is not None


def check_name(name: str) -> str:
    if not is_object_name(name):
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
    raw_statuses = params.get("runtimeStatus")
    if raw_statuses is not None:
        if not _RUNTIME_STATUS.fullmatch(raw_statuses):
            names = ", ".join(p.value for p in SearchPhase)
            raise ProblemError(400, f"runtimeStatus takes a comma list of: {names}")
        statuses = frozenset(SearchPhase(s) for s in raw_statuses.split(","))
    top_raw = params.get("top", str(DEFAULT_TOP))
    if not INTEGER.fullmatch(top_raw) or not 1 <= int(top_raw) <= MAX_TOP:
        raise ProblemError(400, f"top must be an integer from 1 to {MAX_TOP}")
    return ListQuery(
        statuses=statuses,
        created_from=_time_param(params, "createdTimeFrom"),
        created_to=_time_param(params, "createdTimeTo"),
        top=int(top_raw),
        after=decode_continuation(params.get("continuationToken")),
    )


def parse_rfc3339(raw: str) -> dt.datetime | None:
    """An RFC 3339 date-time (what OpenAPI's ``format: date-time`` means), or None."""
    match = RFC3339.fullmatch(raw)
    if match is None:
        return None
    seconds = min(int(match["s"]), 59)  # a leap second is the last second of its minute here
    fraction = f".{match['fraction'][:6]}" if match["fraction"] else ""
    zone = "+00:00" if match["zone"] in ("Z", "z") else match["zone"]
    try:
        return dt.datetime.fromisoformat(
            f"{match['date']}T{match['hms']}:{seconds:02d}{fraction}{zone}"
        )
    except ValueError:
        return None  # e.g. month 13, or an offset past 23:59


def _time_param(params: Mapping[str, str], name: str) -> dt.datetime | None:
    raw = params.get(name)
    if raw is None:
        return None
    moment = parse_rfc3339(raw)
    if moment is None:
        raise ProblemError(400, f"{name} must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z")
    return moment


def encode_continuation(created: str, name: str) -> str:
    """The token after ``(created, name)``: e.g. ``20260131T120000Z.s-0123456789ab``."""
    compact = created.replace("-", "").replace(":", "")
    return f"{compact}.{name}"


def decode_continuation(token: str | None) -> tuple[str, str] | None:
    if token is None:
        return None
    match = _CONTINUATION.fullmatch(token)
    if match is None:
        raise ProblemError(400, "continuationToken is not one this API issued")
    created = f"{match['y']}-{match['mo']}-{match['d']}T{match['h']}:{match['mi']}:{match['s']}Z"
    return created, match["name"]
