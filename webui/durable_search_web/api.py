"""The Durable-style HTTP API: thin views over the shared cache and the Kubernetes API.

Reads of a Search come from the cache (one shared watch); writes and child reads go to the API
server with the identity ``auth`` chooses. Every route's codes follow Durable Functions' HTTP
API: 202 + Location while running, 200 when finished, 404 unknown, 410 already finished.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from durable_search.api.constants import (
    API_VERSION,
    GROUP,
    HTTPTASK_KIND,
    HTTPTASK_PLURAL,
    LABEL_ROLE,
    LABEL_SEARCH_NAME,
    LABEL_SEARCH_UID,
    PROVIDER_PLURAL,
    ROLE_WATCHER,
    SEARCH_KIND,
    SEARCH_PLURAL,
    VERSION,
    SearchPhase,
)
from durable_search.api.timestamps import parse_time
from durable_search.engine.fanin import output_html, provider_html, text_body
from durable_search.engine.fanout import SearchRef, owner_reference
from durable_search.engine.names import label_value, watcher_name
from durable_search_web import status as status_doc
from durable_search_web import validation
from durable_search_web.config import (
    AUTHORIZER,
    CACHE,
    CONFIG,
    LONG_POLL_MAX_SECONDS,
    METRICS,
    WATCHER_LONG_POLL_SECONDS,
)
from durable_search_web.problems import ProblemError

Body = dict[str, Any]
THIRD_PARTY_HEADERS = {
    # Third-party pages never run script on our origin, and load nothing from anywhere.
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
RETRY_AFTER_SECONDS = "1"


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/searches", start_search)
    r.add_get("/api/searches", list_searches)
    r.add_get("/api/searches/{id}", get_status)
    r.add_delete("/api/searches/{id}", purge)
    r.add_get("/api/searches/{id}/result", get_result)
    r.add_get("/api/searches/{id}/results/{provider}", get_provider_result)
    r.add_get("/api/searches/{id}/watcher", get_watcher)
    r.add_post("/api/searches/{id}/terminate", terminate)
    r.add_get("/api/providers", list_providers)
    r.add_get("/api/StartSearch", compat_start)
    r.add_get("/api/GetResult", compat_result)


# -- URLs -----------------------------------------------------------------------------------


def base_url(request: web.Request) -> str:
    """This service's external base URL, as the client reached it (proxies may say how)."""
    proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    prefix = request.headers.get("X-Forwarded-Prefix", "").rstrip("/")
    return f"{proto}://{host}{prefix}"


def search_urls(request: web.Request, name: str) -> dict[str, str]:
    base = f"{base_url(request)}/api/searches/{name}"
    return {
        "statusQueryGetUri": base,
        "resultGetUri": f"{base}/result",
        "terminatePostUri": f"{base}/terminate",
        "purgeHistoryDeleteUri": base,
    }


# -- lookups --------------------------------------------------------------------------------


async def lookup(request: web.Request, name: str) -> Body:
    """The Search from the cache; one that was just created may not be there yet: ask the API."""
    validation.check_name(name)
    cache = request.app[CACHE]
    found = cache.get(name)
    if found is not None:
        return found
    async with request.app[AUTHORIZER].client_for(request) as api:
        try:
            body: Body = await k8s.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, cache.namespace, SEARCH_PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                raise ProblemError(404, f"no search {name!r}") from None
            raise _api_problem(error) from None
    cache.put(body)
    return body


async def children(request: web.Request, search: Mapping[str, Any]) -> dict[str, Body]:
    namespace = request.app[CACHE].namespace
    selector = f"{LABEL_SEARCH_UID}={search['metadata']['uid']}"
    async with request.app[AUTHORIZER].client_for(request) as api:
        try:
            listed = await k8s.CustomObjectsApi(api).list_namespaced_custom_object(
                GROUP, VERSION, namespace, HTTPTASK_PLURAL, label_selector=selector
            )
        except ApiException as error:
            raise _api_problem(error) from None
    return {item["metadata"]["name"]: item for item in listed.get("items", [])}


def _api_problem(error: ApiException) -> ProblemError:
    try:
        message = json.loads(error.body or "{}").get("message") or error.reason
    except ValueError:
        message = error.reason
    status = error.status if error.status in (400, 401, 403, 404, 409, 422) else 502
    return ProblemError(status, f"Kubernetes API: {message}")


# -- start ----------------------------------------------------------------------------------


async def start_search(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        raise ProblemError(415, "send the search as Content-Type: application/json")
    try:
        payload = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise ProblemError(400, "the body is not valid JSON") from None
    return await _start(request, validation.parse_start(payload))


async def compat_start(request: web.Request) -> web.Response:
    """The sample's ``GET /api/StartSearch?q=...``."""
    query = validation.parse_query(request.query.get("q"))
    return await _start(request, validation.StartRequest(query))


async def _start(request: web.Request, start: validation.StartRequest) -> web.Response:
    config = request.app[CONFIG]
    namespace = config.namespace
    name = f"s-{secrets.token_hex(6)}"
    spec: Body = {"query": start.query}
    if start.providers:
        spec["providerRefs"] = list(start.providers)
    async with request.app[AUTHORIZER].client_for(request) as api:
        custom = k8s.CustomObjectsApi(api)
        for provider in start.providers:
            try:
                await custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PROVIDER_PLURAL, provider
                )
            except ApiException as error:
                if error.status == 404:
                    raise ProblemError(
                        400, f"unknown provider {provider!r} in {namespace}"
                    ) from None
                raise _api_problem(error) from None
        body = {
            "apiVersion": API_VERSION,
            "kind": SEARCH_KIND,
            "metadata": {"name": name},
            "spec": spec,
        }
        try:
            created: Body = await custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, SEARCH_PLURAL, body
            )
        except ApiException as error:
            raise _api_problem(error) from None
        request.app[CACHE].put(created)
        if start.watcher:
            try:
                await custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, HTTPTASK_PLURAL, watcher_manifest(request, created)
                )
            except ApiException as error:
                raise _api_problem(error) from None
    urls = search_urls(request, name)
    return web.json_response(
        {"id": name, **urls},
        status=202,
        headers={"Location": urls["statusQueryGetUri"], "Retry-After": RETRY_AFTER_SECONDS},
    )


def watcher_manifest(request: web.Request, search: Mapping[str, Any]) -> Body:
    """The sample's WatchWorkflow: an HttpTask riding this API's 202 long-polling to the end."""
    config = request.app[CONFIG]
    metadata = search["metadata"]
    ref = SearchRef(metadata["name"], metadata["namespace"], metadata["uid"])
    deadline = (
        int(search["spec"].get("deadlineSeconds", 300)) + config.watcher_deadline_margin_seconds
    )
    url = (
        f"{config.watcher_base}/api/searches/{ref.name}?timeoutSeconds={WATCHER_LONG_POLL_SECONDS}"
    )
    return {
        "apiVersion": API_VERSION,
        "kind": HTTPTASK_KIND,
        "metadata": {
            "name": watcher_name(ref.name),
            "labels": {
                LABEL_SEARCH_UID: ref.uid,
                LABEL_SEARCH_NAME: label_value(ref.name),
                LABEL_ROLE: ROLE_WATCHER,
            },
            "ownerReferences": [owner_reference(ref, controller=False)],
        },
        "spec": {
            "request": {
                "method": "GET",
                "url": url,
                "headers": [{"name": "Accept", "value": "application/json"}],
            },
            "deadlineSeconds": deadline,
            "attemptTimeoutSeconds": WATCHER_LONG_POLL_SECONDS + 15,
            "async": {
                "enabled": True,
                "minPollIntervalSeconds": 0,
                "maxPollIntervalSeconds": 5,
                "maxPolls": 10000,
            },
            "response": {"maxBodyBytes": 65536},
        },
    }


# -- status and long-poll -------------------------------------------------------------------


async def get_status(request: web.Request) -> web.Response:
    name = request.match_info["id"]
    timeout = validation.parse_timeout(request.query.get("timeoutSeconds"), LONG_POLL_MAX_SECONDS)
    await request.app[AUTHORIZER].authorize(request, "get")
    search = await lookup(request, name)
    if timeout and not status_doc.is_finished(search):
        baseline = request.headers.get("If-None-Match") or status_doc.etag(search)
        if baseline == status_doc.etag(search):
            search = await _wait_for_change(request, name, timeout) or search
    return status_response(request, search)


async def _wait_for_change(request: web.Request, name: str, timeout: float) -> Body | None:
    cache = request.app[CACHE]
    metrics = request.app[METRICS]
    changed = cache.change_event(name)
    metrics.long_polls.inc()
    try:
        async with asyncio.timeout(timeout):
            await changed.wait()
    except TimeoutError:
        return None
    finally:
        metrics.long_polls.dec()
    current = cache.get(name)
    if current is None:
        raise ProblemError(404, f"search {name!r} was deleted")
    metrics.notify_latency.observe(time.monotonic() - cache.changed_at.get(name, time.monotonic()))
    return current


def status_response(request: web.Request, search: Mapping[str, Any]) -> web.Response:
    document = status_doc.status_document(search, search_urls(request, search["metadata"]["name"]))
    headers = {"ETag": status_doc.etag(search), "Cache-Control": "no-store"}
    if status_doc.is_finished(search):
        return web.json_response(document, status=200, headers=headers)
    headers["Location"] = f"{base_url(request)}{request.rel_url}"
    headers["Retry-After"] = "0" if request.query.get("timeoutSeconds") else RETRY_AFTER_SECONDS
    return web.json_response(document, status=202, headers=headers)


# -- results --------------------------------------------------------------------------------


async def get_result(request: web.Request) -> web.Response:
    return await _result(request, request.match_info["id"])


async def compat_result(request: web.Request) -> web.Response:
    """The sample's ``GET /api/GetResult?id=...``."""
    name = request.query.get("id")
    if not name:
        raise ProblemError(400, "id is required")
    return await _result(request, name)


async def _result(request: web.Request, name: str) -> web.Response:
    await request.app[AUTHORIZER].authorize(request, "get")
    search = await lookup(request, name)
    phase = status_doc.runtime_status(search)
    if phase in (SearchPhase.FAILED, SearchPhase.TERMINATED):
        raise ProblemError(400, f"search {name!r} is {phase.value}: it has no result")
    if not phase.finished:
        return _still_running(name)
    tasks = await children(request, search)
    bodies = {task_name: text_body(task.get("status") or {}) for task_name, task in tasks.items()}
    html = output_html((search.get("status") or {}).get("results") or [], bodies)
    return web.Response(text=html, content_type="text/html", headers=THIRD_PARTY_HEADERS)


async def get_provider_result(request: web.Request) -> web.Response:
    name, provider = request.match_info["id"], request.match_info["provider"]
    await request.app[AUTHORIZER].authorize(request, "get")
    search = await lookup(request, name)
    results = (search.get("status") or {}).get("results") or []
    result = next((r for r in results if r.get("name") == provider), None)
    if result is None:
        raise ProblemError(404, f"search {name!r} has no provider {provider[:64]!r}")
    if not result.get("outcome"):
        return _still_running(name)
    body = None
    task_name = result.get("httpTaskName")
    if task_name and result.get("outcome") == "Succeeded":
        task = (await children(request, search)).get(task_name)
        body = text_body((task or {}).get("status") or {})
    return web.Response(
        text=provider_html(result, body), content_type="text/html", headers=THIRD_PARTY_HEADERS
    )


def _still_running(name: str) -> web.Response:
    return web.json_response(
        {"id": name, "runtimeStatus": "Running", "detail": "not finished yet"},
        status=202,
        headers={"Retry-After": RETRY_AFTER_SECONDS, "Cache-Control": "no-store"},
    )


async def get_watcher(request: web.Request) -> web.Response:
    """The watcher HttpTask's state, so the page can show its final status code."""
    name = request.match_info["id"]
    await request.app[AUTHORIZER].authorize(request, "get", HTTPTASK_PLURAL)
    await lookup(request, name)
    namespace = request.app[CACHE].namespace
    async with request.app[AUTHORIZER].client_for(request) as api:
        try:
            task: Body = await k8s.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, HTTPTASK_PLURAL, watcher_name(name)
            )
        except ApiException as error:
            if error.status == 404:
                raise ProblemError(404, f"search {name!r} has no watcher") from None
            raise _api_problem(error) from None
    status = task.get("status") or {}
    return web.json_response(
        {
            "name": task["metadata"]["name"],
            "phase": status.get("phase", "Pending"),
            "outcome": status.get("outcome"),
            "statusCode": (status.get("response") or {}).get("statusCode"),
            "polls": status.get("pollCount", 0),
            "message": status.get("message"),
        },
        headers={"Cache-Control": "no-store"},
    )


# -- list, terminate, purge -----------------------------------------------------------------


async def list_searches(request: web.Request) -> web.Response:
    query = validation.parse_list(request.query)
    await request.app[AUTHORIZER].authorize(request, "list")
    items = sorted(
        request.app[CACHE].all(),
        key=lambda s: (s["metadata"]["creationTimestamp"], s["metadata"]["name"]),
        reverse=True,
    )
    selected = []
    for search in items:
        key = (search["metadata"]["creationTimestamp"], search["metadata"]["name"])
        if query.after is not None and key >= query.after:
            continue
        created = parse_time(search["metadata"]["creationTimestamp"])
        if query.statuses is not None and status_doc.runtime_status(search) not in query.statuses:
            continue
        if query.created_from and created and created < query.created_from:
            continue
        if query.created_to and created and created > query.created_to:
            continue
        selected.append(search)
        if len(selected) > query.top:
            break
    page, more = selected[: query.top], len(selected) > query.top
    documents = [
        status_doc.status_document(s, search_urls(request, s["metadata"]["name"])) for s in page
    ]
    headers = {"Cache-Control": "no-store"}
    token = None
    if more:
        last = page[-1]["metadata"]
        token = validation.encode_continuation(last["creationTimestamp"], last["name"])
        headers["x-ms-continuation-token"] = token
    return web.json_response({"items": documents, "continuationToken": token}, headers=headers)


async def terminate(request: web.Request) -> web.Response:
    name = request.match_info["id"]
    search = await lookup(request, name)
    if status_doc.is_finished(search):
        raise ProblemError(
            410, f"search {name!r} already finished ({status_doc.runtime_status(search)})"
        )
    async with request.app[AUTHORIZER].client_for(request) as api:
        try:
            await k8s.CustomObjectsApi(api).patch_namespaced_custom_object(
                GROUP,
                VERSION,
                request.app[CACHE].namespace,
                SEARCH_PLURAL,
                name,
                {"spec": {"terminate": True}},
                _content_type="application/merge-patch+json",  # type: ignore[call-arg]
            )
        except ApiException as error:
            raise _api_problem(error) from None
    return web.json_response({"id": name, "terminating": True}, status=202)


async def purge(request: web.Request) -> web.Response:
    name = request.match_info["id"]
    search = await lookup(request, name)
    if not status_doc.is_finished(search):
        raise ProblemError(409, f"search {name!r} is still running: terminate it first")
    async with request.app[AUTHORIZER].client_for(request) as api:
        try:
            await k8s.CustomObjectsApi(api).delete_namespaced_custom_object(
                GROUP,
                VERSION,
                request.app[CACHE].namespace,
                SEARCH_PLURAL,
                name,
                propagation_policy="Background",
            )
        except ApiException as error:
            raise _api_problem(error) from None
    request.app[CACHE].remove(name)
    return web.json_response({"instancesDeleted": 1})


async def list_providers(request: web.Request) -> web.Response:
    """SearchProvider names of the namespace (for the page's provider choice)."""
    await request.app[AUTHORIZER].authorize(request, "list", PROVIDER_PLURAL)
    async with request.app[AUTHORIZER].client_for(request) as api:
        try:
            listed = await k8s.CustomObjectsApi(api).list_namespaced_custom_object(
                GROUP, VERSION, request.app[CACHE].namespace, PROVIDER_PLURAL
            )
        except ApiException as error:
            raise _api_problem(error) from None
    names = sorted(item["metadata"]["name"] for item in listed.get("items", []))
    return web.json_response({"items": names}, headers={"Cache-Control": "no-store"})
