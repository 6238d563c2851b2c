"""``/api/openapi.json``: the API reference, written next to the routes it describes.

Every operation lists every answer it can give, with its media type, schema and headers, so
that a client (and ``tests/integration/test_web_fuzz.py``, which holds the service to this
document with schemathesis) can rely on it. The parameter patterns are the validators' own
(``validation.py``): what the document calls valid, the service accepts. In ``--auth client``
mode the document declares the bearer scheme on every route but the public ones.
"""

from __future__ import annotations

from typing import Any

from durable_search.api.constants import Outcome, SearchPhase
from durable_search_web import validation
from durable_search_web.auth import WATCHER_AUDIENCE, AuthMode
from durable_search_web.config import LONG_POLL_MAX_SECONDS, MAX_REQUEST_BYTES

Json = dict[str, Any]

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": validation.OBJECT_NAME_PATTERN, "maxLength": 253},
    "description": "The Search's metadata.name (s-<12 hex> for searches started here).",
}
_NEW_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": validation.DNS_LABEL_PATTERN, "maxLength": 63},
    "description": "The id to start under: a DNS-1123 label (at most 63 characters).",
}
_REASON_PATTERN = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
_HTML = "text/html"
_PROBLEM_MEDIA = "application/problem+json"
_SANDBOXED = (
    "Third-party HTML, sent with Content-Security-Policy: sandbox; default-src 'none' and "
    "X-Content-Type-Options: nosniff."
)


def _header(description: str, schema: Json | None = None) -> Json:
    return {"description": description, "required": True, "schema": schema or _STRING}


_RETRY_AFTER = _header("Seconds to wait before asking again.", {"type": "string"})
_LOCATION = _header("The status URL to poll.")
_ETAG = _header("The Search's resourceVersion, quoted: send it back as If-None-Match.")

# Why each error can happen, per status; each operation picks the ones it can give.
_PROBLEMS = {
    "400": "Bad input (the detail says which), or a malformed X-Forwarded-* header from a "
    "trusted proxy.",
    "401": "--auth client: no bearer token, or one the API server (or, for the watcher, the "
    "TokenReview) did not accept.",
    "403": "--auth client: the caller may not do this (a SelfSubjectAccessReview said no), "
    "or the Kubernetes API refused the write.",
    "404": "No such Search (or provider, or watcher).",
    "409": "The Search is still running (purge); a PUT's id is taken by a Search with another "
    "input, or by one no start request made; or the Kubernetes API saw a conflict.",
    "410": "The Search has finished already.",
    "413": f"The request body is larger than {MAX_REQUEST_BYTES} bytes.",
    "415": "The body is not UTF-8 application/json.",
    "422": "The Kubernetes API refused the object.",
    "429": "Too many starts from this client (--start-rate, --start-burst).",
    "502": "The Kubernetes API failed.",
    "503": "Too many long-polls are waiting already (--max-long-polls): poll again after "
    "Retry-After. The watcher treats this as still running.",
}
_PROBLEM_HEADERS = {
    "401": {"WWW-Authenticate": _header("Bearer")},
    "429": {"Retry-After": _RETRY_AFTER},
    "503": {"Retry-After": _RETRY_AFTER},
}


def _problem(status: str) -> Json:
    response: Json = {
        "description": _PROBLEMS[status],
        "content": {_PROBLEM_MEDIA: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in _PROBLEM_HEADERS:
        response["headers"] = _PROBLEM_HEADERS[status]
    return response


def _response(
    description: str,
    schema: Json | None = None,
    media: str = "application/json",
    headers: Json | None = None,
    links: Json | None = None,
) -> Json:
    response: Json = {"description": description}
    if schema is not None:
        response["content"] = {media: {"schema": schema}}
    if headers:
        response["headers"] = headers
    if links:
        response["links"] = links
    return response


def _operation(
    operation_id: str,
    summary: str,
    responses: Json,
    problems: str,
    parameters: list[Json] | None = None,
    **extra: Any,
) -> Json:
    """An operation whose error answers are the space-separated statuses ``problems``."""
    for status in problems.split():
        responses[status] = _problem(status)
    operation: Json = {"operationId": operation_id, "summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    operation.update(extra)
    return operation


def _links_to_search(expression: str) -> Json:
    """Where a Search's id leads (for clients, and for schemathesis' stateful phase)."""
    links: Json = {
        name: {"operationId": operation, "parameters": {"id": expression}}
        for name, operation in (
            ("GetStatus", "getStatus"),
            ("GetResult", "getResult"),
            ("Terminate", "terminateSearch"),
            ("Purge", "purgeSearch"),
            ("Rerun", "rerunSearch"),
            ("GetTimeline", "getTimeline"),
        )
    }
    links["CompatGetResult"] = {
        "operationId": "compatGetResult",
        "parameters": {"query.id": expression},
    }
    return links


def _links_to_results() -> Json:
    """From a status to its first provider's page and to its watcher."""
    return {
        "GetProviderResult": {
            "operationId": "getProviderResult",
            "parameters": {
                "id": "$response.body#/id",
                "provider": "$response.body#/customStatus/results/0/name",
            },
        },
        "GetWatcher": {"operationId": "getWatcher", "parameters": {"id": "$response.body#/id"}},
    }


def _query(name: str, schema: Json, description: str = "", required: bool = False) -> Json:
    parameter: Json = {"name": name, "in": "query", "schema": schema}
    if description:
        parameter["description"] = description
    if required:
        parameter["required"] = True
    return parameter


def _paths() -> Json:
    status = {"$ref": "#/components/schemas/Status"}
    check = {"$ref": "#/components/schemas/CheckStatus"}
    running = {"$ref": "#/components/schemas/StillRunning"}
    html = {"type": "string"}
    started = {"Location": _LOCATION, "Retry-After": _RETRY_AFTER}
    # Reads of the cache: authorization (401/403), and the API server may fail the review.
    read = "400 401 403 404 502"
    return {
        "/api/searches": {
            "post": _operation(
                "startSearch",
                "Start a search (and its watcher)",
                {
                    "200": _response(
                        "Finished within waitForCompletionSeconds: the final status.",
                        status,
                        headers={"ETag": _ETAG},
                        links=_links_to_results(),
                    ),
                    "202": _response(
                        "Started; Location is the status URL.",
                        check,
                        headers=started,
                        links=_links_to_search("$response.body#/id"),
                    ),
                },
                "400 401 403 409 413 415 422 429 502",
                [
                    _query(
                        "waitForCompletionSeconds",
                        {"type": "number", "minimum": 0, "maximum": LONG_POLL_MAX_SECONDS},
                        "Wait up to this long for the Search to finish: 200 with its final "
                        "status if it does, else 202 as without it.",
                    )
                ],
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/StartRequest"}
                        }
                    },
                },
            ),
            "get": _operation(
                "listSearches",
                "List searches, newest first",
                {
                    "200": _response(
                        "A page of statuses.",
                        {
                            "type": "object",
                            "required": ["items", "continuationToken"],
                            "properties": {
                                "items": {"type": "array", "items": status},
                                "continuationToken": _NULLABLE_STRING,
                            },
                        },
                        links=_links_to_search("$response.body#/items/0/id"),
                    )
                },
                "400 401 403 502",
                [
                    _query(
                        "runtimeStatus",
                        {"type": "string", "pattern": validation.RUNTIME_STATUS_PATTERN},
                        "Comma list of " + ", ".join(p.value for p in SearchPhase),
                    ),
                    _query("createdTimeFrom", {"type": "string", "format": "date-time"}),
                    _query("createdTimeTo", {"type": "string", "format": "date-time"}),
                    _query(
                        "top",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": validation.MAX_TOP,
                            "default": validation.DEFAULT_TOP,
                        },
                    ),
                    _query(
                        "continuationToken",
                        {"type": "string", "pattern": validation.CONTINUATION_PATTERN},
                        "The previous page's continuationToken (also its "
                        "x-ms-continuation-token header).",
                    ),
                ],
            ),
            "delete": _operation(
                "purgeSearches",
                "Purge the finished searches a filter selects",
                {"200": _response("Deleted.", _deleted())},
                "400 401 403 502",
                [
                    _query(
                        "runtimeStatus",
                        {"type": "string", "pattern": validation.RUNTIME_STATUS_PATTERN},
                        "Comma list of " + ", ".join(p.value for p in SearchPhase),
                    ),
                    _query("createdTimeFrom", {"type": "string", "format": "date-time"}),
                    _query("createdTimeTo", {"type": "string", "format": "date-time"}),
                ],
                description="At least one filter (400 otherwise). Pending and Running searches "
                "are never deleted (skipped, not counted); each delete carries the Search's "
                "uid as a precondition.",
            ),
        },
        "/api/searches/{id}": {
            "put": _operation(
                "putSearch",
                "Start a search under this id, idempotently",
                {
                    "200": _response(
                        "Started before with the same input, and finished: its status.",
                        status,
                        headers={"ETag": _ETAG},
                        links=_links_to_results(),
                    ),
                    "202": _response(
                        "Started now, or before with the same input and still running "
                        "(then the body is its status). Location is the status URL.",
                        check,
                        headers=started,
                        links=_links_to_search("$response.body#/id"),
                    ),
                },
                "400 401 403 409 413 415 422 429 502",
                [_NEW_ID],
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/StartRequest"}
                        }
                    },
                },
                description="The canonical input is kept in the annotation "
                "durablesearch.dev/input. Another input under the same id, or a Search without "
                "that annotation, is a 409.",
            ),
            "get": _operation(
                "getStatus",
                "Status; long-polls with timeoutSeconds",
                {
                    "200": _response(
                        "Finished.", status, headers={"ETag": _ETAG}, links=_links_to_results()
                    ),
                    "202": _response(
                        "Pending or Running; Location and Retry-After set.",
                        status,
                        headers={**started, "ETag": _ETAG},
                        links=_links_to_results(),
                    ),
                },
                f"{read} 503",
                [
                    _ID,
                    _query(
                        "timeoutSeconds",
                        {"type": "number", "minimum": 0, "maximum": LONG_POLL_MAX_SECONDS},
                        "Wait up to this long for a change (If-None-Match: the ETag last "
                        "seen; default: the current one).",
                    ),
                    {"name": "If-None-Match", "in": "header", "schema": _STRING},
                ],
                description="In --auth client mode the operator's watcher may also call this "
                f"with a token for audience {WATCHER_AUDIENCE} (--watcher-user).",
            ),
            "delete": _operation(
                "purgeSearch",
                "Purge a finished search",
                {"200": _response("Deleted.", _deleted())},
                "400 401 403 404 409 502",
                [_ID],
            ),
        },
        "/api/searches/{id}/rerun": {
            "post": _operation(
                "rerunSearch",
                "Run a search again under a new id",
                {
                    "202": _response(
                        "Started; Location is the new run's status URL.",
                        check,
                        headers=started,
                        links=_links_to_search("$response.body#/id"),
                    )
                },
                "400 401 403 404 409 422 429 502",
                [_ID],
                description="The spec is copied but terminate and terminateReason; a watcher is "
                "created if the original had one; the new Search is labelled "
                "durablesearch.dev/rerun-of: <id>.",
            )
        },
        "/api/searches/{id}/timeline": {
            "get": _operation(
                "getTimeline",
                "Each provider's attempts, waits and polls, and the watcher's long-polls",
                {"200": _response("The timeline.", {"$ref": "#/components/schemas/Timeline"})},
                read,
                [_ID],
            )
        },
        "/api/searches/{id}/result": {
            "get": _operation(
                "getResult",
                "The joined result page (the sample's GetResult)",
                {
                    "200": _response(_SANDBOXED, html, _HTML),
                    "202": _response("Still running.", running, headers=_retry_only()),
                },
                read,
                [_ID],
                description="400 when the Search Failed or was Terminated.",
            )
        },
        "/api/searches/{id}/results/{provider}": {
            "get": _operation(
                "getProviderResult",
                "One provider's page (what the page's sandboxed iframes load)",
                {
                    "200": _response(_SANDBOXED, html, _HTML),
                    "202": _response(
                        "That provider is still running.", running, headers=_retry_only()
                    ),
                },
                read,
                [
                    _ID,
                    {
                        "name": "provider",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "pattern": validation.DNS_LABEL_PATTERN,
                            "maxLength": 63,
                        },
                    },
                ],
            ),
        },
        "/api/searches/{id}/terminate": {
            "post": _operation(
                "terminateSearch",
                "Terminate a running search",
                {
                    "202": _response(
                        "Terminating.",
                        {
                            "type": "object",
                            "required": ["id", "terminating"],
                            "properties": {"id": _STRING, "terminating": {"const": True}},
                        },
                    )
                },
                "400 401 403 404 409 410 422 502",
                [
                    _ID,
                    _query(
                        "reason",
                        {
                            "type": "string",
                            "maxLength": 256,
                            "pattern": _REASON_PATTERN,
                        },
                        "Why: kept in spec.terminateReason and shown in the Search's condition "
                        "message.",
                    ),
                ],
            )
        },
        "/api/searches/{id}/watcher": {
            "get": _operation(
                "getWatcher",
                "The watcher HttpTask's state (its final status code)",
                {"200": _response("The watcher.", {"$ref": "#/components/schemas/Watcher"})},
                read,
                [_ID],
            )
        },
        "/api/providers": {
            "get": _operation(
                "listProviders",
                "SearchProvider names of the namespace",
                {
                    "200": _response(
                        "Names.",
                        {
                            "type": "object",
                            "required": ["items"],
                            "properties": {"items": {"type": "array", "items": _STRING}},
                        },
                    )
                },
                "400 401 403 502",
            )
        },
        "/api/StartSearch": {
            "get": _operation(
                "compatStartSearch",
                "The sample's start route",
                {
                    "202": _response(
                        "Started.",
                        check,
                        headers=started,
                        links=_links_to_search("$response.body#/id"),
                    )
                },
                "400 401 403 409 422 429 502",
                [_query("q", _query_schema(), required=True)],
            )
        },
        "/api/GetResult": {
            "get": _operation(
                "compatGetResult",
                "The sample's result route",
                {
                    "200": _response(_SANDBOXED, html, _HTML),
                    "202": _response("Still running.", running, headers=_retry_only()),
                },
                read,
                [
                    _query(
                        "id",
                        {
                            "type": "string",
                            "pattern": validation.OBJECT_NAME_PATTERN,
                            "maxLength": 253,
                        },
                        required=True,
                    )
                ],
            )
        },
        "/": {
            "get": _operation(
                "page",
                "The single-page app",
                {"200": _response("The page.", html, _HTML)},
                "400",
                security=[],
            )
        },
        "/healthz": {
            "get": _operation(
                "healthz",
                "Liveness: the shared watch is not silent",
                {
                    "200": _response("ok", _STRING, "text/plain"),
                    "503": _response("The watch has been silent too long.", _STRING, "text/plain"),
                },
                "400",
                security=[],
            )
        },
        "/readyz": {
            "get": _operation(
                "readyz",
                "Readiness: the shared watch has synced",
                {
                    "200": _response("ok", _STRING, "text/plain"),
                    "503": _response("Not synced yet.", _STRING, "text/plain"),
                },
                "400",
                security=[],
            )
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "Prometheus metrics (--auth client: `get` on the non-resource URL /metrics)",
                {"200": _response("The text exposition format.", _STRING, "text/plain")},
                "400 401 403 502",
            )
        },
        "/api/openapi.json": {
            "get": _operation(
                "openapi",
                "This document",
                {"200": _response("OpenAPI 3.1.", {"type": "object"})},
                "400",
                security=[],
            )
        },
    }


def _deleted() -> Json:
    return {
        "type": "object",
        "required": ["instancesDeleted"],
        "properties": {"instancesDeleted": {"type": "integer", "minimum": 0}},
    }


def _retry_only() -> Json:
    return {"Retry-After": _RETRY_AFTER}


def _query_schema() -> Json:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": validation.MAX_QUERY,
        "pattern": validation.QUERY_PATTERN,
    }


# One provider's entry of a Search's status.results (the CRD's schema says the rest).
_RESULT: Json = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": _STRING,
        "httpTaskName": _STRING,
        "outcome": {"type": "string", "enum": [o.value for o in Outcome]},
        "statusCode": {"type": "integer"},
        "attempts": {"type": "integer"},
        "durationMs": {"type": "integer"},
        "message": _STRING,
        "outputs": {
            "type": "object",
            "description": "The provider's spec.outputs (CEL) evaluated over its final answer.",
            "additionalProperties": _STRING,
        },
    },
}


def _schemas() -> Json:
    phases = [p.value for p in SearchPhase]
    summary = {
        "type": "object",
        "required": ["progress", "results", "conditions"],
        "properties": {
            "progress": _STRING,
            "duration": _NULLABLE_STRING,
            "results": {"type": "array", "items": _RESULT},
            "conditions": {"type": "array", "items": {"type": "object"}},
        },
    }
    uris = ("id", "statusQueryGetUri", "resultGetUri", "terminatePostUri", "purgeHistoryDeleteUri")
    return {
        "StartRequest": {
            "type": "object",
            "required": ["query"],
            "additionalProperties": False,
            "properties": {
                "query": _query_schema(),
                "providers": {
                    "type": "array",
                    "maxItems": validation.MAX_PROVIDERS,
                    "items": {
                        "type": "string",
                        "pattern": validation.DNS_LABEL_PATTERN,
                        "maxLength": 63,
                    },
                    "description": "SearchProvider names; default: all of the namespace. An "
                    "unknown name is a 400.",
                },
                "watcher": {"type": "boolean", "default": True},
            },
        },
        "CheckStatus": {
            "type": "object",
            "required": list(uris),
            "properties": dict.fromkeys(uris, _STRING),
        },
        "Status": {
            "type": "object",
            "required": [
                "id",
                "instanceId",
                "runtimeStatus",
                "input",
                "output",
                "customStatus",
                "createdTime",
                "lastUpdatedTime",
                "statusQueryGetUri",
            ],
            "properties": {
                "id": _STRING,
                "instanceId": _STRING,
                "name": _STRING,
                "runtimeStatus": {"enum": phases},
                "input": {
                    "type": "object",
                    "properties": {
                        "query": _NULLABLE_STRING,
                        "providers": {"type": "array", "items": _STRING},
                    },
                },
                "output": {"oneOf": [{"type": "null"}, summary]},
                "customStatus": summary,
                "createdTime": {"type": "string", "format": "date-time"},
                "lastUpdatedTime": {"type": "string", "format": "date-time"},
                "statusQueryGetUri": _STRING,
                "resultGetUri": _STRING,
                "terminatePostUri": _STRING,
                "purgeHistoryDeleteUri": _STRING,
            },
        },
        "StillRunning": {
            "type": "object",
            "required": ["id", "runtimeStatus", "detail"],
            "properties": {"id": _STRING, "runtimeStatus": _STRING, "detail": _STRING},
        },
        "Watcher": {
            "type": "object",
            "required": ["name", "phase", "polls"],
            "properties": {
                "name": _STRING,
                "phase": _STRING,
                "outcome": _NULLABLE_STRING,
                "statusCode": {"type": ["integer", "null"]},
                "polls": {"type": "integer"},
                "message": _NULLABLE_STRING,
            },
        },
        "Timeline": _timeline_schema(),
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": _STRING,
                "title": _STRING,
                "status": {"type": "integer"},
                "detail": _STRING,
            },
        },
    }


def _timeline_schema() -> Json:
    milliseconds = {"type": "integer", "minimum": 0}
    segment = {
        "type": "object",
        "required": ["kind", "startMs", "endMs"],
        "properties": {
            "kind": {"enum": ["attempt", "poll", "wait", "inflight"]},
            "for": {"enum": ["attempt", "poll"], "description": "wait, inflight: what is next"},
            "number": {"type": "integer"},
            "startMs": milliseconds,
            "endMs": milliseconds,
            "statusCode": {"type": "integer"},
            "error": _STRING,
        },
    }
    lane = {
        "type": "object",
        "required": ["name", "role", "phase", "segments", "truncated"],
        "properties": {
            "name": _STRING,
            "role": {"enum": ["provider", "watcher"]},
            "phase": _STRING,
            "outcome": _NULLABLE_STRING,
            "attempts": {"type": "integer"},
            "polls": {"type": "integer"},
            "segments": {"type": "array", "items": segment},
            "truncated": {
                "type": "boolean",
                "description": "attemptLog keeps the last 10 exchanges: earlier ones are not drawn",
            },
        },
    }
    return {
        "type": "object",
        "description": "Offsets in milliseconds from the Search's start (startTime).",
        "required": ["id", "runtimeStatus", "startTime", "endMs", "lanes"],
        "properties": {
            "id": _STRING,
            "runtimeStatus": {"enum": [p.value for p in SearchPhase]},
            "startTime": {"type": "string", "format": "date-time"},
            "endMs": milliseconds,
            "lanes": {"type": "array", "items": lane},
        },
    }


def openapi_document(auth: AuthMode = AuthMode.SERVICE_ACCOUNT) -> Json:
    document: Json = {
        "openapi": "3.1.0",
        "info": {
            "title": "Durable Search",
            "version": "v1alpha1",
            "description": "A Durable-Functions-style API over Search custom resources. Errors "
            f"are application/problem+json; request bodies are capped at {MAX_REQUEST_BYTES} "
            "bytes (413).",
        },
        "paths": _paths(),
        "components": {"schemas": _schemas()},
    }
    if auth is AuthMode.CLIENT:
        document["components"]["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "A Kubernetes bearer token; the API server authenticates it.",
            }
        }
        document["security"] = [{"bearer": []}]
    else:
        for item in document["paths"].values():
            for operation in item.values():
                operation.pop("security", None)
    return document
