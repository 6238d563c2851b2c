"""The Durable-style HTTP API: thin views over the shared cache and the Kubernetes API.

Reads of a Search come from the cache (one shared watch); writes and child reads go to the API
server (``durable_search.kube.KubeApi``) with the identity ``auth`` chooses. Views decide only
on the refusals that mean something to them (a missing object); any other refusal becomes a
problem in one place (``problems.kube_problem``). Every route's codes follow Durable Functions'
HTTP API: 202 + Location while running, 200 when finished, 404 unknown, 410 already finished.

``ROUTES`` is the one table of the API: each route's handler and the :class:`Access` it needs,
which the middleware checks before the handler runs (``access.py``). So a handler never runs
for a caller who may not call it, and handlers only deal with what they are for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from durable_search.api.constants import (
    HTTPTASK_PLURAL,
    SEARCH_KIND,
    SEARCH_PLURAL,
    SearchPhase,
)
from durable_search.api.status import (
    Body,
    SearchResult,
    search_finished,
    search_phase,
    search_status,
    task_status,
)
from durable_search.api.timestamps import parse_time
from durable_search.engine import management
from durable_search.engine import timeline as timeline_doc
from durable_search.engine.names import watcher_name
from durable_search.engine.page import output_html, provider_html, text_body
from durable_search.errors import NotFoundError
from durable_search.kube.api import KubeApi
from durable_search_web import status as status_doc
from durable_search_web import validation
from durable_search_web.access import (
    CREATE_HTTPTASKS,
    CREATE_SEARCHES,
    DELETE_SEARCHES,
    GET_HTTPTASKS,
    GET_SEARCHES,
    LIST_PROVIDERS,
    LIST_SEARCHES,
    PATCH_SEARCHES,
    Access,
    Route,
)
from durable_search_web.config import (
    ACCESS,
    AUTHORIZER,
    CACHE,
    CALLER,
    CLOCK,
    CONFIG,
    LONG_POLL_MAX_SECONDS,
    LONG_POLLS,
    METRICS,
    ORIGIN,
)
from durable_search_web.problems import ProblemError

logger = logging.getLogger("durable_search_web.api")
THIRD_PARTY_HEADERS = {
    # Third-party pages never run script on our origin, and load nothing from anywhere.
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
RETRY_AFTER_SECONDS = "1"
# Past --max-long-polls: come back in a little while (the watcher's polls wait this long).
LONG_POLL_RETRY_AFTER_SECONDS = "2"
# Children read at once for the joined result page (one GET each).
CHILD_READS_AT_ONCE = 8


def setup_routes(app: web.Application, routes: tuple[Route, ...] | None = None) -> None:
    """Register ``routes`` (default: the API's) and their access declarations."""
    access = app.setdefault(ACCESS, {})
    for route in ROUTES if routes is None else routes:
        registered = app.router.add_route(route.method, route.path, route.handler, name=route.name)
        access[registered] = route.access


# -- URLs -----------------------------------------------------------------------------------


def base_url(request: web.Request) -> str:
    """This service's external base URL, as the client reached it (trusted proxies may say)."""
    return request[ORIGIN].base_url


def search_urls(request: web.Request, name: str) -> dict[str, str]:
    base = f"{base_url(request)}/api/searches/{name}"
    return {
        "statusQueryGetUri": base,
        "resultGetUri": f"{base}/result",
        "terminatePostUri": f"{base}/terminate",
        "purgeHistoryDeleteUri": base,
    }


# -- lookups --------------------------------------------------------------------------------


def caller_api(request: web.Request) -> KubeApi:
    """The Kubernetes API as the identity ``auth`` chose for this request's caller."""
    return request.app[AUTHORIZER].api_for(request[CALLER])


async def lookup(request: web.Request, name: str) -> Body:
    """The Search from the cache; one that was just created may not be there yet: ask the API."""
    validation.check_name(name)
    cache = request.app[CACHE]
    found = cache.get(name)
    if found is not None:
        return found
    api = caller_api(request)
    try:
        body = await api.get(SEARCH_PLURAL, cache.namespace, name)
    except NotFoundError:
        raise ProblemError(404, f"no search {name!r}") from None
    cache.put(body)
    return body


def owned_by(task: Mapping[str, Any], search: Mapping[str, Any], *, controller: bool) -> bool:
    """Whether ``search`` owns ``task`` (as its controller, or at all for the watcher).

    Names and labels are anyone's to choose: a tenant who may create HttpTasks could create
    one under the name a Search records, or label one as its child. The owner's uid is not.
    """
    uid = search["metadata"]["uid"]
    return any(
        ref.get("uid") == uid
        and ref.get("kind") == SEARCH_KIND
        and (bool(ref.get("controller")) or not controller)
        for ref in (task.get("metadata") or {}).get("ownerReferences") or ()
    )


async def recorded_children(
    request: web.Request, search: Mapping[str, Any], results: Sequence[SearchResult]
) -> dict[str, Body]:
    """The HttpTasks ``results`` record with a page, each read by its recorded name."""
    names = {
        str(r["httpTaskName"])
        for r in results
        if r.get("outcome") == "Succeeded" and validation.is_object_name(r.get("httpTaskName"))
    }
    return await owned_children(request, search, names)


async def owned_children(
    request: web.Request, search: Mapping[str, Any], names: set[str]
) -> dict[str, Body]:
    """The HttpTasks named ``names`` that ``search`` controls (others are ignored, logged)."""
    if not names:
        return {}
    namespace = request.app[CACHE].namespace
    gate = asyncio.Semaphore(CHILD_READS_AT_ONCE)
    api = caller_api(request)

    async def read(name: str) -> Body | None:
        async with gate:
            try:
                task = await api.get(HTTPTASK_PLURAL, namespace, name)
            except NotFoundError:
                return None  # deleted since (or never made): no page to show
        if not owned_by(task, search, controller=True):
            logger.warning(
                "HttpTask %s/%s is recorded by Search %s but not controlled by it: ignored",
                namespace,
                name,
                search["metadata"]["name"],
            )
            return None
        return task

    found = await asyncio.gather(*(read(name) for name in sorted(names)))
    return {task["metadata"]["name"]: task for task in found if task is not None}


# -- start ----------------------------------------------------------------------------------


async def _start_body(request: web.Request) -> validation.StartRequest:
    if request.content_type != "application/json":
        raise ProblemError(415, "send the search as Content-Type: application/json")
    if (request.charset or "utf-8").lower() not in ("utf-8", "utf8"):
        raise ProblemError(415, "send the search as UTF-8 JSON (RFC 8259)")
    payload = validation.parse_json(await request.read())
    return validation.parse_start(payload)


async def start_search(request: web.Request) -> web.Response:
    wait = validation.parse_timeout(
        request.query.get("waitForCompletionSeconds"),
        LONG_POLL_MAX_SECONDS,
        "waitForCompletionSeconds",
    )
    start = await _start_body(request)
    name = management.new_search_name()
    await _create(request, name, start)
    if wait:
        finished = await _wait_until_finished(request, name, wait)
        if finished is not None:
            return status_response(request, finished)
    return _started(request, name)


async def put_search(request: web.Request) -> web.Response:
    """Start under the client's id, idempotently: the same input again answers as the status
    route would (never a second run); another input, or a Search no start request made, 409."""
    name = validation.check_new_id(request.match_info["id"])
    start = await _start_body(request)
    existing = await _find(request, name)
    if existing is None:
        if await _create(request, name, start) is not None:
            return _started(request, name)
        existing = await _find(request, name)  # created meanwhile by someone else
        if existing is None:
            raise ProblemError(409, f"search {name!r} was created and deleted meanwhile: retry")
    same = management.same_start(existing, start)
    if same is None:
        raise ProblemError(
            409, f"search {name!r} exists and was not made by a start request: choose another id"
        )
    if not same:
        raise ProblemError(409, f"search {name!r} exists with another input")
    return status_response(request, existing)


async def compat_start(request: web.Request) -> web.Response:
    """The sample's ``GET /api/StartSearch?q=...``."""
    query = validation.parse_query(request.query.get("q"))
    name = management.new_search_name()
    await _create(request, name, validation.StartRequest(query))
    return _started(request, name)


def _started(request: web.Request, name: str) -> web.Response:
    urls = search_urls(request, name)
    return web.json_response(
        {"id": name, **urls},
        status=202,
        headers={"Location": urls["statusQueryGetUri"], "Retry-After": RETRY_AFTER_SECONDS},
    )


async def _find(request: web.Request, name: str) -> Body | None:
    try:
        return await lookup(request, name)
    except ProblemError as problem:
        if problem.status == 404:
            return None
        raise


async def _create(request: web.Request, name: str, start: validation.StartRequest) -> Body | None:
    """Create the Search (and its watcher) as the caller; None if ``name`` is taken."""
    config = request.app[CONFIG]
    authorizer = request.app[AUTHORIZER]
    caller = request[CALLER]
    if start.watcher:
        # Checked before anything is created: a refused watcher must not leave half a start.
        await authorizer.require(caller, CREATE_HTTPTASKS)
    namespace = config.namespace
    body = management.start_manifest(name, start, config.default_ttl_seconds or None)
    api = authorizer.api_for(caller)
    for provider in start.providers:
        found = await api.get_provider(namespace, provider)
        if found is None:
            raise ProblemError(400, f"unknown provider {provider!r} in {namespace}")
        validation.check_provider_expressions(provider, found.get("spec") or {})
    created = await api.create(SEARCH_PLURAL, namespace, body)
    if created is None:
        return None  # the name is taken
    request.app[CACHE].put(created)
    if start.watcher:
        await _create_watcher(request, api, created)
    return created


async def _create_watcher(request: web.Request, api: KubeApi, search: Mapping[str, Any]) -> None:
    # Not ``api.create``: an HttpTask already under the watcher's name is not ours (409).
    namespace = request.app[CONFIG].namespace
    await api.create_new(HTTPTASK_PLURAL, namespace, watcher_manifest(request, search))


def watcher_manifest(request: web.Request, search: Mapping[str, Any]) -> Body:
    """The sample's WatchWorkflow: an HttpTask riding this API's 202 long-polling to the end."""
    config = request.app[CONFIG]
    return management.watcher_manifest(
        search, config.watcher_base, config.watcher_deadline_margin_seconds
    )


async def _wait_until_finished(request: web.Request, name: str, timeout: float) -> Body | None:
    """The Search once finished, if within ``timeout`` (Durable's WaitForCompletionOr...);
    woken by the shared watch like a long-poll, and counted against the same cap."""
    cache = request.app[CACHE]
    clock = request.app[CLOCK]
    slots = request.app[LONG_POLLS]
    if not slots.acquire():
        return None  # started all the same: the client polls the Location
    request.app[METRICS].long_polls.inc()
    deadline = clock.monotonic() + timeout
    try:
        while True:
            current = cache.get(name)
            if current is not None and search_finished(search_status(current)):
                return current
            changed = cache.change_event(name)
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                return None
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                return None
    finally:
        request.app[METRICS].long_polls.dec()
        slots.release()


# -- status and long-poll -------------------------------------------------------------------


async def get_status(request: web.Request) -> web.Response:
    name = request.match_info["id"]
    timeout = validation.parse_timeout(request.query.get("timeoutSeconds"), LONG_POLL_MAX_SECONDS)
    search = await lookup(request, name)
    if timeout and not search_finished(search_status(search)):
        baseline = request.headers.get("If-None-Match") or status_doc.etag(search)
        if baseline == status_doc.etag(search):
            search = await _wait_for_change(request, name, timeout) or search
    return status_response(request, search)


async def _wait_for_change(request: web.Request, name: str, timeout: float) -> Body | None:
    cache = request.app[CACHE]
    metrics = request.app[METRICS]
    slots = request.app[LONG_POLLS]
    if not slots.acquire():
        metrics.refused.labels(limit="long_polls").inc()
        raise ProblemError(
            503,
            f"{slots.limit} long-polls are waiting already: poll again later",
            {"Retry-After": LONG_POLL_RETRY_AFTER_SECONDS},
        )
    changed = cache.change_event(name)
    metrics.long_polls.inc()
    try:
        async with asyncio.timeout(timeout):
            await changed.wait()
    except TimeoutError:
        return None
    finally:
        metrics.long_polls.dec()
        slots.release()
    current = cache.get(name)
    if current is None:
        raise ProblemError(404, f"search {name!r} was deleted")
    now = request.app[CLOCK].monotonic()
    metrics.notify_latency.observe(now - cache.changed_at.get(name, now))
    return current


def status_response(request: web.Request, search: Mapping[str, Any]) -> web.Response:
    document = status_doc.status_document(search, search_urls(request, search["metadata"]["name"]))
    headers = {"ETag": status_doc.etag(search), "Cache-Control": "no-store"}
    if search_finished(search_status(search)):
        return web.json_response(document, status=200, headers=headers)
    location = document["statusQueryGetUri"]
    timeout = request.query.get("timeoutSeconds")
    if timeout is not None:
        location += f"?timeoutSeconds={timeout}"  # validated: a plain decimal number
    headers["Location"] = location
    headers["Retry-After"] = "0" if timeout else RETRY_AFTER_SECONDS
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
    search = await lookup(request, name)
    phase = search_phase(search_status(search))
    if phase in (SearchPhase.FAILED, SearchPhase.TERMINATED):
        raise ProblemError(400, f"search {name!r} is {phase.value}: it has no result")
    if not phase.finished:
        return _still_running(name)
    results = search_status(search).get("results") or []
    tasks = await recorded_children(request, search, results)
    bodies = {task_name: text_body(task_status(task)) for task_name, task in tasks.items()}
    html = output_html(results, bodies)
    return web.Response(text=html, content_type="text/html", headers=THIRD_PARTY_HEADERS)


async def get_provider_result(request: web.Request) -> web.Response:
    name, provider = request.match_info["id"], request.match_info["provider"]
    search = await lookup(request, name)
    results = search_status(search).get("results") or []
    result = next((r for r in results if r.get("name") == provider), None)
    if result is None:
        raise ProblemError(404, f"search {name!r} has no provider {provider[:64]!r}")
    if not result.get("outcome"):
        return _still_running(name)
    body = None
    task = (await recorded_children(request, search, [result])).get(result.get("httpTaskName", ""))
    if task is not None:
        body = text_body(task_status(task))
    return web.Response(
        text=provider_html(result, body), content_type="text/html", headers=THIRD_PARTY_HEADERS
    )


def _still_running(name: str) -> web.Response:
    return web.json_response(
        {"id": name, "runtimeStatus": "Running", "detail": "not finished yet"},
        status=202,
        headers={"Retry-After": RETRY_AFTER_SECONDS, "Cache-Control": "no-store"},
    )


async def _watcher_of(request: web.Request, search: Mapping[str, Any]) -> Body | None:
    """The Search's watcher HttpTask, if it has one (and owns it)."""
    name = search["metadata"]["name"]
    api = caller_api(request)
    try:
        task = await api.get(HTTPTASK_PLURAL, request.app[CACHE].namespace, watcher_name(name))
    except NotFoundError:
        return None
    return task if owned_by(task, search, controller=False) else None


async def get_watcher(request: web.Request) -> web.Response:
    """The watcher HttpTask's state, so the page can show its final status code."""
    name = request.match_info["id"]
    search = await lookup(request, name)
    task = await _watcher_of(request, search)
    if task is None:
        raise ProblemError(404, f"search {name!r} has no watcher")
    status = task_status(task)
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
        if query.statuses is not None and search_phase(search_status(search)) not in query.statuses:
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
    reason = validation.parse_terminate_reason(request.query.get("reason"))
    search = await lookup(request, name)
    phase = search_phase(search_status(search))
    if phase.finished:
        raise ProblemError(410, f"search {name!r} already finished ({phase})")
    api = caller_api(request)
    await api.patch(
        SEARCH_PLURAL, request.app[CACHE].namespace, name, management.terminate_patch(reason)
    )
    return web.json_response({"id": name, "terminating": True}, status=202)


async def purge(request: web.Request) -> web.Response:
    name = request.match_info["id"]
    search = await lookup(request, name)
    if not search_finished(search_status(search)):
        raise ProblemError(409, f"search {name!r} is still running: terminate it first")
    api = caller_api(request)
    if not await _delete(request, api, name, search["metadata"]["uid"]):
        raise ProblemError(404, f"no search {name!r}")
    return web.json_response({"instancesDeleted": 1})


async def purge_many(request: web.Request) -> web.Response:
    """Purge by filter: the finished Searches the filter selects (never a running one)."""
    selection = validation.parse_purge(request.query)
    chosen = management.purge_selection(request.app[CACHE].all(), selection)
    gate = asyncio.Semaphore(CHILD_READS_AT_ONCE)
    api = caller_api(request)

    async def delete(name: str, uid: str) -> bool:
        async with gate:
            return await _delete(request, api, name, uid)

    deleted = await asyncio.gather(*(delete(name, uid) for name, uid in chosen))
    return web.json_response({"instancesDeleted": sum(deleted)})


async def _delete(request: web.Request, api: KubeApi, name: str, uid: str) -> bool:
    """Delete the Search ``name`` if it is still the one with ``uid`` (False: gone already,
    or re-created under the name since)."""
    if not await api.delete_exact(SEARCH_PLURAL, request.app[CACHE].namespace, name, uid):
        return False
    request.app[CACHE].remove(name)
    return True


async def rerun(request: web.Request) -> web.Response:
    """Another run of a Search: its spec but terminate, created as the caller, with a watcher
    if the original had one, labelled ``durablesearch.dev/rerun-of``."""
    name = validation.check_name(request.match_info["id"])
    authorizer = request.app[AUTHORIZER]
    caller = request[CALLER]
    namespace = request.app[CACHE].namespace
    api = authorizer.api_for(caller)
    try:
        # The full spec (inline providers too): the cache holds a slimmed copy.
        original = await api.get(SEARCH_PLURAL, namespace, name)
    except NotFoundError:
        raise ProblemError(404, f"no search {name!r}") from None
    watched = await _watcher_of(request, original) is not None
    if watched:
        await authorizer.require(caller, CREATE_HTTPTASKS)
    new_name = management.new_search_name()
    # Not ``api.create``: the name is new, so a conflict is the client's to hear (409).
    created = await api.create_new(
        SEARCH_PLURAL, namespace, management.rerun_manifest(original, new_name)
    )
    request.app[CACHE].put(created)
    if watched:
        await _create_watcher(request, api, created)
    return _started(request, new_name)


async def get_timeline(request: web.Request) -> web.Response:
    """Each provider's attempts, waits and polls (and the watcher's long-polls), at offsets
    from the Search's start: what the page draws. Bounded: at most 16 providers and the
    watcher, each with its last 10 log entries."""
    name = request.match_info["id"]
    search = await lookup(request, name)
    results = search_status(search).get("results") or []
    names = {
        str(r["httpTaskName"]) for r in results if validation.is_object_name(r.get("httpTaskName"))
    }
    tasks, watcher = await asyncio.gather(
        owned_children(request, search, names), _watcher_of(request, search)
    )
    document = timeline_doc.timeline(search, tasks, watcher, request.app[CLOCK].now())
    return web.json_response(document, headers={"Cache-Control": "no-store"})


async def list_providers(request: web.Request) -> web.Response:
    """SearchProvider names of the namespace (for the page's provider choice)."""
    api = caller_api(request)
    listed = await api.list_providers(request.app[CACHE].namespace)
    names = sorted(item["metadata"]["name"] for item in listed)
    return web.json_response({"items": names}, headers={"Cache-Control": "no-store"})


# -- the table ------------------------------------------------------------------------------

_STATUS = Access((GET_SEARCHES,), watcher=True)
_RESULT = Access((GET_SEARCHES, GET_HTTPTASKS))
_START = Access((CREATE_SEARCHES,), start=True)
# An equal PUT answers with the status; a rerun reads the original (and its watcher).
_PUT = Access((CREATE_SEARCHES, GET_SEARCHES), start=True)
_RERUN = Access((GET_SEARCHES, GET_HTTPTASKS, CREATE_SEARCHES), start=True)

ROUTES: tuple[Route, ...] = (
    Route("POST", "/api/searches", start_search, _START, "startSearch"),
    Route("GET", "/api/searches", list_searches, Access((LIST_SEARCHES,)), "listSearches"),
    Route(
        "DELETE",
        "/api/searches",
        purge_many,
        Access((LIST_SEARCHES, DELETE_SEARCHES)),
        "purgeSearches",
    ),
    Route("GET", "/api/searches/{id}", get_status, _STATUS, "getStatus"),
    Route("PUT", "/api/searches/{id}", put_search, _PUT, "putSearch"),
    Route("DELETE", "/api/searches/{id}", purge, Access((DELETE_SEARCHES,)), "purgeSearch"),
    Route("POST", "/api/searches/{id}/rerun", rerun, _RERUN, "rerunSearch"),
    Route("GET", "/api/searches/{id}/timeline", get_timeline, _RESULT, "getTimeline"),
    Route("GET", "/api/searches/{id}/result", get_result, _RESULT, "getResult"),
    Route(
        "GET",
        "/api/searches/{id}/results/{provider}",
        get_provider_result,
        _RESULT,
        "getProviderResult",
    ),
    Route("GET", "/api/searches/{id}/watcher", get_watcher, _RESULT, "getWatcher"),
    Route(
        "POST",
        "/api/searches/{id}/terminate",
        terminate,
        Access((PATCH_SEARCHES,)),
        "terminateSearch",
    ),
    Route("GET", "/api/providers", list_providers, Access((LIST_PROVIDERS,)), "listProviders"),
    Route("GET", "/api/StartSearch", compat_start, _START, "compatStartSearch"),
    Route("GET", "/api/GetResult", compat_result, _RESULT, "compatGetResult"),
)
