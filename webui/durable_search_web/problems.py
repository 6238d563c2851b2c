"""RFC 9457 problem details: every error the API answers is ``application/problem+json``.

Handlers raise :class:`ProblemError`; the middleware in ``app.py`` turns it, aiohttp's own HTTP
errors (unknown route, wrong method, body too large), and a Kubernetes API refusal no handler
decided on (:func:`kube_problem`, the one place those are mapped) into a problem document.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

from durable_search.errors import KubeApiError
from durable_search.kube.client import answered_status

PROBLEM_JSON = "application/problem+json"
# The API server's answers the client is told as they are; any other is our upstream failing.
PASSED_THROUGH = frozenset({400, 401, 403, 404, 409, 422})
UPSTREAM_FAILED = 502


class ProblemError(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def problem_response(
    status: int, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    return web.Response(
        status=status, text=json.dumps(body), content_type=PROBLEM_JSON, headers=headers
    )


def kube_problem(error: KubeApiError) -> ProblemError:
    """A Kubernetes API refusal as the client's problem: 400, 401 (with the Bearer challenge),
    403, 404, 409 and 422 as the API server said them, anything else a 502."""
    status = answered_status(error)
    if status not in PASSED_THROUGH:
        status = UPSTREAM_FAILED
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return ProblemError(status, f"Kubernetes API: {error.message}", headers)


def status_phrase(error: KubeApiError) -> str:
    """``error``'s status and its reason phrase, as in ``403 Forbidden``."""
    status = answered_status(error)
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)
