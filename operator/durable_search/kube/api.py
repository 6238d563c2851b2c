"""The Kubernetes calls the operator makes, as verbs over :class:`KubeClient`.

kopf patches without ``resourceVersion``; every status write here carries the version the
decision was made on, so a write based on a stale object fails with ``ConflictError`` instead
of silently overwriting a newer status.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from durable_search.api.constants import (
    GROUP,
    HTTPTASK_PLURAL,
    PROVIDER_PLURAL,
    SEARCH_PLURAL,
    VERSION,
)
from durable_search.api.status import Body
from durable_search.errors import (
    ApiError,
    ConflictError,
    CrdsMissingError,
    NotFoundError,
    RefusedError,
)
from durable_search.kube.client import KubeClient
from durable_search.kube.config import load_configuration
from durable_search.kube.objects import merge_patch


def custom_path(
    plural: str, namespace: str, name: str | None = None, subresource: str | None = None
) -> str:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}"
    if name is not None:
        path += f"/{name}"
    if subresource is not None:
        path += f"/{subresource}"
    return path


def core_path(plural: str, namespace: str, name: str | None = None, sub: str | None = None) -> str:
    path = f"/api/v1/namespaces/{namespace}/{plural}"
    if name is not None:
        path += f"/{name}"
    if sub is not None:
        path += f"/{sub}"
    return path


def _lease_path(namespace: str, name: str | None = None) -> str:
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
    return path if name is None else f"{path}/{name}"


class KubeApi:
    """Our kinds' verbs and the few core calls the operator needs, over one client."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    @classmethod
    async def connect(cls, kubeconfig: str | None) -> KubeApi:
        return cls(KubeClient(await load_configuration(kubeconfig)))

    async def close(self) -> None:
        await self.client.close()

    # -- custom resources --------------------------------------------------------------------

    async def get(self, plural: str, namespace: str, name: str) -> Body:
        return await self.client.get(custom_path(plural, namespace, name))

    async def create(self, plural: str, namespace: str, body: Mapping[str, Any]) -> Body | None:
        """Create ``body``; None when an object of that name already exists."""
        try:
            return await self.client.post(custom_path(plural, namespace), body)
        except ConflictError:
            return None

    async def write_status(
        self, plural: str, body: Mapping[str, Any], status: Mapping[str, Any]
    ) -> Body:
        """Replace ``.status`` with ``status``, guarded by ``body``'s resourceVersion.

        Any 4xx but 401, 404, 408, 409 and 429 is a :class:`RefusedError`: a status write an
        admission webhook or policy denies (403), or one the server will not take as written
        (405, 415), is refused for good, and the worker records that rather than restart (a
        restart would send its claimed request again).
        """
        metadata = body["metadata"]
        patch = {
            "metadata": {"resourceVersion": metadata["resourceVersion"]},
            "status": merge_patch(body.get("status") or {}, status),
        }
        path = custom_path(plural, metadata["namespace"], metadata["name"], "status")
        try:
            return await self.client.merge_patch(path, patch)
        except ApiError as error:
            if 400 <= error.status < 500 and error.status not in (401, 408, 429):
                raise RefusedError(error.message, error.status) from error
            raise

    async def patch(self, plural: str, namespace: str, name: str, patch: Mapping[str, Any]) -> Body:
        return await self.client.merge_patch(custom_path(plural, namespace, name), patch)

    async def delete(self, plural: str, namespace: str, name: str, uid: str | None = None) -> None:
        options: Body = {"propagationPolicy": "Background"}
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            await self.client.delete(custom_path(plural, namespace, name), options)
        except NotFoundError:
            return

    async def check_served(self) -> None:
        """Fail clearly when the CRDs are not installed (kopf would just wait, watching nothing)."""
        try:
            resources = await self.client.get(f"/apis/{GROUP}/{VERSION}")
        except NotFoundError:
            raise CrdsMissingError(
                f"the API server does not serve {GROUP}/{VERSION}: install the CRDs first "
                "(kubectl apply -f crds/, or the Helm chart)"
            ) from None
        served = {r.get("name") for r in resources.get("resources") or ()}
        missing = {SEARCH_PLURAL, HTTPTASK_PLURAL, PROVIDER_PLURAL} - served
        if missing:
            raise CrdsMissingError(
                f"{GROUP}/{VERSION} lacks {', '.join(sorted(missing))}: install the CRDs "
                "(kubectl apply -f crds/)"
            )

    async def list_providers(self, namespace: str) -> list[Body]:
        items, _version = await self.client.list_all(custom_path(PROVIDER_PLURAL, namespace))
        return items

    async def get_provider(self, namespace: str, name: str) -> Body | None:
        try:
            return await self.get(PROVIDER_PLURAL, namespace, name)
        except NotFoundError:
            return None

    # -- the web service's calls: as a caller, strict writes, reviews ------------------------

    def as_token(self, token: str) -> KubeApi:
        """These verbs as the caller whose bearer token is ``token`` (``KubeClient.as_token``)."""
        return KubeApi(self.client.as_token(token))

    async def create_new(self, plural: str, namespace: str, body: Mapping[str, Any]) -> Body:
        """Create ``body``; ``ConflictError`` when its name is taken (``create`` answers None)."""
        return await self.client.post(custom_path(plural, namespace), body)

    async def delete_exact(self, plural: str, namespace: str, name: str, uid: str) -> bool:
        """Delete the object if it is still the one with ``uid``; False when it is gone, or was
        re-created under the name since (the uid precondition fails: 409)."""
        options = {"propagationPolicy": "Background", "preconditions": {"uid": uid}}
        try:
            await self.client.delete(custom_path(plural, namespace, name), options)
        except (NotFoundError, ConflictError):
            return False
        return True

    async def access_review(self, attributes: Mapping[str, Any]) -> bool:
        """Whether this client's identity may do what ``attributes`` name: a
        SelfSubjectAccessReview's spec (``resourceAttributes`` or ``nonResourceAttributes``)."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": dict(attributes),
        }
        answer = await self.client.post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", review
        )
        return bool((answer.get("status") or {}).get("allowed"))

    async def review_token(self, token: str, audiences: list[str]) -> Body:
        """A TokenReview of ``token`` for ``audiences``: its ``status`` (``authenticated``,
        ``user``, ``audiences``), ``{}`` when the API server wrote none."""
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences},
        }
        answer = await self.client.post("/apis/authentication.k8s.io/v1/tokenreviews", review)
        status: Body = answer.get("status") or {}
        return status

    # -- core calls --------------------------------------------------------------------------

    async def read_secret(self, namespace: str, name: str) -> Body:
        return await self.client.get(core_path("secrets", namespace, name))

    async def read_config_map(self, namespace: str, name: str) -> Body:
        return await self.client.get(core_path("configmaps", namespace, name))

    async def request_token(
        self, namespace: str, account: str, audiences: list[str], seconds: int
    ) -> Body:
        """A TokenRequest for ServiceAccount ``account``: ``status.token`` and its expiry."""
        spec: Body = {"expirationSeconds": seconds}
        if audiences:
            spec["audiences"] = audiences
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        return await self.client.post(
            core_path("serviceaccounts", namespace, account, "token"), body
        )

    async def whoami(self) -> str:
        """The username this client authenticates as (a SelfSubjectReview)."""
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        answer = await self.client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", review)
        return str(((answer.get("status") or {}).get("userInfo") or {}).get("username") or "")

    async def read_admission(self, kind: str, name: str) -> Body:
        """A ValidatingAdmissionPolicy (``kind="validatingadmissionpolicies"``) or binding."""
        return await self.client.get(f"/apis/admissionregistration.k8s.io/v1/{kind}/{name}")

    async def create_event(self, namespace: str, event: Mapping[str, Any]) -> Body:
        return await self.client.post(core_path("events", namespace), event)

    # -- the operators' Leases (a ring's members, a standalone operator) --------------------

    async def write_lease(self, namespace: str, body: Mapping[str, Any]) -> bool:
        """Create or replace the Lease ``body``; False when another writer came between."""
        name = body["metadata"]["name"]
        try:
            current = await self.client.get(_lease_path(namespace, name))
        except NotFoundError:
            try:
                await self.client.post(_lease_path(namespace), body)
            except ConflictError:
                return False
            return True
        metadata = {**body["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
        try:
            await self.client.request(
                "PUT", _lease_path(namespace, name), body={**body, "metadata": metadata}
            )
        except ConflictError:
            return False
        return True

    async def list_leases(self, namespace: str, selector: str) -> list[Body]:
        items, _version = await self.client.list_all(_lease_path(namespace), labelSelector=selector)
        return items

    async def delete_lease(self, namespace: str, name: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self.client.delete(_lease_path(namespace, name))

    async def version(self) -> Body:
        return await self.client.get("/version")
