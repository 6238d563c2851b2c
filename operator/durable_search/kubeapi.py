"""Kubernetes API calls of our own (kubernetes_asyncio), apart from kopf's watches.

kopf patches without ``resourceVersion``; every status write here carries the version the
decision was made on, so a write based on a stale object fails with :class:`ConflictError`
instead of silently overwriting a newer status. Everything returns plain dicts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from durable_search.api.constants import (
    GROUP,
    HTTPTASK_PLURAL,
    PROVIDER_PLURAL,
    SEARCH_PLURAL,
    VERSION,
)

Body = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class ConflictError(Exception):
    """The object changed since it was read (HTTP 409): re-read it and decide again."""


class CrdsMissingError(Exception):
    """Durable Search's kinds are not served by this API server."""


class NotFoundError(Exception):
    """The object does not exist (HTTP 404)."""


async def load_configuration(kubeconfig: str | None) -> k8s.Configuration:
    """KUBECONFIG or ``--kubeconfig``, then the in-cluster config, then ``~/.kube/config``."""
    configuration = k8s.Configuration()
    if kubeconfig:
        await k8s_config.load_kube_config(
            config_file=kubeconfig, client_configuration=configuration
        )
        return configuration
    try:
        k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=configuration
        )
    except k8s_config.ConfigException:
        await k8s_config.load_kube_config(client_configuration=configuration)
    return configuration


class KubeApi:
    """The calls the controllers make, over one shared ``ApiClient``."""

    def __init__(self, api_client: k8s.ApiClient) -> None:
        self.api_client = api_client
        self._custom = k8s.CustomObjectsApi(api_client)
        self._core = k8s.CoreV1Api(api_client)

    @classmethod
    async def connect(cls, kubeconfig: str | None) -> KubeApi:
        configuration = await load_configuration(kubeconfig)
        return cls(k8s.ApiClient(configuration))

    async def close(self) -> None:
        await self.api_client.close()

    # -- custom resources --------------------------------------------------------------------

    async def get(self, plural: str, namespace: str, name: str) -> Body:
        with _mapped_errors():
            result: Body = await self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
        return result

    async def list_objects(
        self, plural: str, namespace: str, label_selector: str = ""
    ) -> list[Body]:
        with _mapped_errors():
            result = await self._custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, label_selector=label_selector
            )
        items: list[Body] = result.get("items", [])
        return items

    async def create(self, plural: str, namespace: str, body: Mapping[str, Any]) -> Body | None:
        """Create ``body``; None when an object of that name already exists."""
        try:
            with _mapped_errors():
                result: Body = await self._custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, dict(body)
                )
        except ConflictError:
            return None
        return result

    async def write_status(
        self, plural: str, body: Mapping[str, Any], status: Mapping[str, Any]
    ) -> Body:
        """Replace ``.status`` with ``status``, guarded by ``body``'s resourceVersion."""
        metadata = body["metadata"]
        old = body.get("status") or {}
        patch = {
            "metadata": {"resourceVersion": metadata["resourceVersion"]},
            "status": merge_patch(old, status),
        }
        with _mapped_errors():
            result: Body = await self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                metadata["namespace"],
                plural,
                metadata["name"],
                patch,
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
            )
        return result

    async def patch(self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]) -> Body:
        with _mapped_errors():
            result: Body = await self._custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                dict(patch),
                _content_type=MERGE_PATCH,  # type: ignore[call-arg]
            )
        return result

    async def delete(self, plural: str, namespace: str, name: str, uid: str | None = None) -> None:
        options = k8s.V1DeleteOptions(
            propagation_policy="Background",
            preconditions=k8s.V1Preconditions(uid=uid) if uid else None,
        )
        try:
            with _mapped_errors():
                await self._custom.delete_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, name, body=options
                )
        except NotFoundError:
            return

    async def check_served(self) -> None:
        """Fail clearly when the CRDs are not installed (kopf would just wait, watching nothing)."""
        try:
            resources = await k8s.CustomObjectsApi(self.api_client).get_api_resources(
                GROUP, VERSION
            )
        except ApiException as error:
            if error.status == 404:
                raise CrdsMissingError(
                    f"the API server does not serve {GROUP}/{VERSION}: install the CRDs first "
                    "(kubectl apply -f crds/, or the Helm chart)"
                ) from None
            raise
        served = {r.name for r in resources.resources}
        missing = {SEARCH_PLURAL, HTTPTASK_PLURAL, PROVIDER_PLURAL} - served
        if missing:
            raise CrdsMissingError(
                f"{GROUP}/{VERSION} lacks {', '.join(sorted(missing))}: install the CRDs "
                "(kubectl apply -f crds/)"
            )

    async def list_providers(self, namespace: str) -> list[Body]:
        return await self.list_objects(PROVIDER_PLURAL, namespace)

    async def get_provider(self, namespace: str, name: str) -> Body | None:
        try:
            return await self.get(PROVIDER_PLURAL, namespace, name)
        except NotFoundError:
            return None

    async def list_children(self, namespace: str, label_selector: str) -> list[Body]:
        return await self.list_objects(HTTPTASK_PLURAL, namespace, label_selector)


def version_order(candidate: Mapping[str, Any], held: Mapping[str, Any]) -> int:
    """How ``candidate`` compares with ``held`` (the same object seen earlier).

    1: newer, or the object was deleted and re-created under the name; 0: the same version;
    -1: older. resourceVersions are opaque, but etcd's are integers and ordered; where they
    are not integers, any different version counts as newer.
    """
    if candidate["metadata"].get("uid") != held["metadata"].get("uid"):
        return 1
    new = str(candidate["metadata"].get("resourceVersion", ""))
    old = str(held["metadata"].get("resourceVersion", ""))
    if new.isdigit() and old.isdigit():
        return (int(new) > int(old)) - (int(new) < int(old))
    return 0 if new == old else 1


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def without_bookkeeping(body: Mapping[str, Any]) -> Body:
    """``body`` without what only the API server and kubectl need: ``managedFields`` and the
    last-applied annotation. As Python objects these dominate a small object's memory, and the
    operator and web service hold thousands of objects."""
    metadata = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    annotations = metadata.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        metadata["annotations"] = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return {**body, "metadata": metadata}


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif value != before or key not in old:
            patch[key] = value
    return patch


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    """Turn the API's 409 and 404 into the exceptions callers decide on."""
    try:
        yield
    except ApiException as error:
        if error.status == 409:
            raise ConflictError(error.reason) from error
        if error.status == 404:
            raise NotFoundError(error.reason) from error
        raise
