"""Creating Searches and waiting for them, with the synchronous kubernetes client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from kubernetes import client

from durable_search.api.constants import (
    GROUP,
    HTTPTASK_PLURAL,
    LABEL_SEARCH_UID,
    SEARCH_PLURAL,
    VERSION,
)
from durable_search.api.status import Body

FINISHED = {"Completed", "Failed", "Terminated"}


class Searches:
    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def create(self, spec: Body, name: str | None = None) -> str:
        name = name or f"s-{uuid.uuid4().hex[:8]}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Search",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, SEARCH_PLURAL, body
        )
        return name

    def get(self, name: str) -> Body:
        result: Body = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, SEARCH_PLURAL, name
        )
        return result

    def gone(self, name: str) -> bool:
        try:
            self.get(name)
        except client.ApiException as error:
            if error.status == 404:
                return True
            raise
        return False

    def patch_spec(self, name: str, spec: Body) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, SEARCH_PLURAL, name, {"spec": spec}
        )

    def wait(
        self, name: str, until: Callable[[Body], bool] | None = None, timeout: float = 30
    ) -> Body:
        check = until or (lambda body: (body.get("status") or {}).get("phase") in FINISHED)
        deadline = time.monotonic() + timeout
        body = self.get(name)
        while time.monotonic() < deadline:
            if check(body):
                return body
            time.sleep(0.1)
            body = self.get(name)
        raise AssertionError(f"Search {name} not there within {timeout}s: {body.get('status')}")

    def children(self, name: str) -> dict[str, Body]:
        uid = self.get(name)["metadata"]["uid"]
        listed = self.custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            self.namespace,
            HTTPTASK_PLURAL,
            label_selector=f"{LABEL_SEARCH_UID}={uid}",
        )
        return {
            item["metadata"]["labels"]["durablesearch.dev/provider"]: item
            for item in listed["items"]
        }

    def result(self, body: Body, provider: str) -> Body:
        return next(r for r in body["status"]["results"] if r["name"] == provider)


def create_provider(
    api_client: client.ApiClient, namespace: str, name: str, url: str, **spec: Any
) -> str:
    """Create a SearchProvider ``name`` for ``url`` (plus any other spec fields); its name."""
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        "searchproviders",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "SearchProvider",
            "metadata": {"name": name},
            "spec": {"url": url, **spec},
        },
    )
    return name
