"""``/api/openapi.json``: the API reference, written next to the routes it describes."""

from __future__ import annotations

from typing import Any

from durable_search.api.constants import SearchPhase

_PROBLEM = {"$ref": "#/components/responses/ProblemError"}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The Search's metadata.name (s-<12 hex>).",
}


def _response(
    description: str, schema: dict[str, Any] | None = None, media: str = "application/json"
) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = {media: {"schema": schema}}
    return response


def openapi_document() -> dict[str, Any]:
    status = {"$ref": "#/components/schemas/Status"}
    check = {"$ref": "#/components/schemas/CheckStatus"}
    html = {"type": "string"}
    sandboxed = (
        "Third-party HTML, sent with Content-Security-Policy: sandbox and "
        "X-Content-Type-Options: nosniff."
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Durable Search",
            "version": "v1alpha1",
            "description": "A Durable-Functions-style API over Search custom resources. Errors "
            "are application/problem+json; request bodies are capped at 16 KiB (413).",
        },
        "paths": {
            "/api/searches": {
                "post": {
                    "summary": "Start a search (and its watcher)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/StartRequest"}
                            }
                        },
                    },
                    "responses": {
                        "202": _response("Started; Location is the status URL.", check),
                        "400": _PROBLEM,
                        "413": _PROBLEM,
                        "415": _PROBLEM,
                    },
                },
                "get": {
                    "summary": "List searches, newest first",
                    "parameters": [
                        {
                            "name": "runtimeStatus",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "Comma list of "
                            + ", ".join(p.value for p in SearchPhase),
                        },
                        {
                            "name": "createdTimeFrom",
                            "in": "query",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                        {
                            "name": "createdTimeTo",
                            "in": "query",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                        {
                            "name": "top",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 500,
                                "default": 100,
                            },
                        },
                        {"name": "continuationToken", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _response(
                            "A page of statuses.",
                            {
                                "type": "object",
                                "properties": {
                                    "items": {"type": "array", "items": status},
                                    "continuationToken": {"type": ["string", "null"]},
                                },
                            },
                        ),
                        "400": _PROBLEM,
                    },
                },
            },
            "/api/searches/{id}": {
                "get": {
                    "summary": "Status; long-polls with timeoutSeconds",
                    "parameters": [
                        _ID,
                        {
                            "name": "timeoutSeconds",
                            "in": "query",
                            "schema": {"type": "number", "minimum": 0, "maximum": 60},
                            "description": "Wait up to this long for a change (If-None-Match: the "
                            "ETag last seen; default: the current one).",
                        },
                        {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _response("Finished.", status),
                        "202": _response(
                            "Pending or Running; Location and Retry-After set.", status
                        ),
                        "400": _PROBLEM,
                        "404": _PROBLEM,
                    },
                },
                "delete": {
                    "summary": "Purge a finished search",
                    "parameters": [_ID],
                    "responses": {
                        "200": _response(
                            "Deleted.",
                            {
                                "type": "object",
                                "properties": {"instancesDeleted": {"type": "integer"}},
                            },
                        ),
                        "404": _PROBLEM,
                        "409": _PROBLEM,
                    },
                },
            },
            "/api/searches/{id}/result": {
                "get": {
                    "summary": "The joined result page (the sample's GetResult)",
                    "parameters": [_ID],
                    "responses": {
                        "200": _response(sandboxed, html, "text/html"),
                        "202": _response("Still running; Retry-After set."),
                        "400": _PROBLEM,
                        "404": _PROBLEM,
                    },
                }
            },
            "/api/searches/{id}/results/{provider}": {
                "get": {
                    "summary": "One provider's page (what the page's sandboxed iframes load)",
                    "parameters": [
                        _ID,
                        {
                            "name": "provider",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _response(sandboxed, html, "text/html"),
                        "202": _response("That provider is still running."),
                        "404": _PROBLEM,
                    },
                }
            },
            "/api/searches/{id}/terminate": {
                "post": {
                    "summary": "Terminate a running search",
                    "parameters": [_ID],
                    "responses": {
                        "202": _response("Terminating."),
                        "404": _PROBLEM,
                        "410": _PROBLEM,
                    },
                }
            },
            "/api/searches/{id}/watcher": {
                "get": {
                    "summary": "The watcher HttpTask's state (its final status code)",
                    "parameters": [_ID],
                    "responses": {
                        "200": _response("The watcher.", {"type": "object"}),
                        "404": _PROBLEM,
                    },
                }
            },
            "/api/providers": {
                "get": {
                    "summary": "SearchProvider names of the namespace",
                    "responses": {"200": _response("Names.", {"type": "object"})},
                }
            },
            "/api/StartSearch": {
                "get": {
                    "summary": "The sample's start route",
                    "parameters": [
                        {"name": "q", "in": "query", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"202": _response("Started.", check), "400": _PROBLEM},
                }
            },
            "/api/GetResult": {
                "get": {
                    "summary": "The sample's result route",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _response(sandboxed, html, "text/html"),
                        "202": _response("Still running."),
                        "400": _PROBLEM,
                        "404": _PROBLEM,
                    },
                }
            },
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _response("ok")}}},
            "/readyz": {
                "get": {
                    "summary": "The shared watch has synced",
                    "responses": {"200": _response("ok"), "503": _response("not yet")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": _response("text exposition")},
                }
            },
        },
        "components": {
            "schemas": {
                "StartRequest": {
                    "type": "object",
                    "required": ["query"],
                    "additionalProperties": False,
                    "properties": {
                        "query": {"type": "string", "minLength": 1, "maxLength": 512},
                        "providers": {
                            "type": "array",
                            "maxItems": 16,
                            "items": {
                                "type": "string",
                                "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                            },
                            "description": "SearchProvider names; default: all of the namespace.",
                        },
                        "watcher": {"type": "boolean", "default": True},
                    },
                },
                "CheckStatus": {
                    "type": "object",
                    "properties": {
                        k: {"type": "string"}
                        for k in (
                            "id",
                            "statusQueryGetUri",
                            "resultGetUri",
                            "terminatePostUri",
                            "purgeHistoryDeleteUri",
                        )
                    },
                },
                "Status": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "runtimeStatus": {"enum": [p.value for p in SearchPhase]},
                        "input": {"type": "object"},
                        "output": {"type": ["object", "null"]},
                        "customStatus": {"type": "object"},
                        "createdTime": {"type": "string", "format": "date-time"},
                        "lastUpdatedTime": {"type": "string", "format": "date-time"},
                    },
                },
                "ProblemError": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                },
            },
            "responses": {
                "ProblemError": {
                    "description": "An error, with a reason.",
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/ProblemError"}
                        }
                    },
                }
            },
        },
    }
