"""Request headers resolved at send time: literal values and values read from Secrets.

Secret values live only in memory for the exchange that uses them; they are marked
``origin_bound`` so the executor sends them to the original request's origin only, and they
never reach status, Events or logs (errors name the Secret and key, never the value).
"""

from __future__ import annotations

import base64

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from durable_search.api.models import RequestSpec, SecretKeyRef
from durable_search.http.executor import RequestHeader


class CredentialError(Exception):
    """A Secret or token the request needs could not be obtained (message has no secret)."""


class Credentials:
    def __init__(self, api_client: k8s.ApiClient) -> None:
        self._core = k8s.CoreV1Api(api_client)

    async def secret_value(self, namespace: str, ref: SecretKeyRef) -> str:
        try:
            secret = await self._core.read_namespaced_secret(ref.name, namespace)
        except ApiException as error:
            raise CredentialError(
                f'cannot read Secret "{ref.name}" in {namespace}: {error.status} {error.reason}'
            ) from None
        data = secret.data or {}
        if ref.key not in data:
            raise CredentialError(f'Secret "{ref.name}" has no key "{ref.key}"')
        return base64.b64decode(data[ref.key]).decode()

    async def headers(self, namespace: str, request: RequestSpec) -> list[RequestHeader]:
        headers = []
        for header in request.headers:
            if header.secret is not None:
                value = await self.secret_value(namespace, header.secret)
                headers.append(RequestHeader(header.name, value, origin_bound=True))
            else:
                headers.append(RequestHeader(header.name, header.value or ""))
        if request.auth is not None:
            raise CredentialError("token sources (spec.request.auth) are not supported yet")
        return headers
