"""Creating HttpTasks and waiting for them, with the synchronous kubernetes client."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, VERSION

FINISHED = ("Succeeded", "Failed", "Terminated")


def create_task(api_client: client.ApiClient, namespace: str, name: str, spec: Any) -> None:
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        HTTPTASK_PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "HttpTask",
            "metadata": {"name": name},
            "spec": spec,
        },
    )


def get_task(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    task: dict[str, Any] = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, HTTPTASK_PLURAL, name
    )
    return task


def wait_task(
    api_client: client.ApiClient, namespace: str, name: str, timeout: float = 60
) -> dict[str, Any]:
    """The task once it has finished (its phase is Succeeded, Failed or Terminated)."""
    deadline = time.monotonic() + timeout
    task = get_task(api_client, namespace, name)
    while (task.get("status") or {}).get("phase") not in FINISHED:
        if time.monotonic() > deadline:
            raise AssertionError(f"HttpTask {name} did not finish: {task.get('status')}")
        time.sleep(0.1)
        task = get_task(api_client, namespace, name)
    return task
