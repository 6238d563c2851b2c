"""Whether the admission policies stand guard, and which audiences belong to the API server.

The operator reads Secrets and mints tokens with its own rights. That is only safe while the
ValidatingAdmissionPolicies (``api.admission``) refuse objects naming Secrets or tokens their
author may not use, so the guard checks at start and every minute that every policy and binding
exists; while one is missing, credentials are withheld (outcome Blocked).

It also learns the API server's own audiences — from the policies' parameter ConfigMap and from
the ``aud`` of the operator's own ServiceAccount token — because a token for one of those
audiences is a key to the API server itself, and the operator never mints one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from durable_search.api import admission
from durable_search.errors import BlockedError, KubeApiError, NotFoundError
from durable_search.kube.api import KubeApi
from durable_search.kube.client import ApiError

logger = logging.getLogger("durable_search.admission")
CHECK_INTERVAL_SECONDS = 60.0
IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def token_audiences(token: str) -> frozenset[str]:
    """The ``aud`` claim of a JWT (unverified: only used to learn what to refuse)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return frozenset()
    audiences = claims.get("aud") if isinstance(claims, dict) else None
    if isinstance(audiences, str):
        return frozenset({audiences})
    if isinstance(audiences, list):
        return frozenset(str(a) for a in audiences)
    return frozenset()


class AdmissionGuard:
    def __init__(
        self,
        api: KubeApi | None,
        *,
        interval: float = CHECK_INTERVAL_SECONDS,
        own_token: Callable[[], str | None] | None = None,
    ) -> None:
        self._api = api
        self._interval = interval
        self._own_token = own_token or _in_cluster_token
        self.installed = False
        self._checked = False
        self.missing: tuple[str, ...] = ()
        self.api_audiences: frozenset[str] = frozenset()

    def require(self) -> None:
        """Raise :class:`BlockedError` unless every policy and binding was there last time."""
        if not self.installed:
            raise BlockedError(
                "admission policies not installed (kubectl apply -f manifests/policies/): "
                "Secrets are not resolved and tokens not minted without them"
            )

    def refuse_api_audience(self, audience: str) -> None:
        if audience in self.api_audiences:
            raise BlockedError(
                f"a token for the API server's own audience {audience!r} is never minted"
            )

    async def check(self) -> None:
        """Look the policies and bindings up once; learn the API audiences."""
        if self._api is None:
            return
        missing: list[str] = []
        audiences = set(token_audiences(self._own_token() or ""))
        for name in admission.POLICY_NAMES:
            if await self._read("validatingadmissionpolicies", name) is None:
                missing.append(f"ValidatingAdmissionPolicy/{name}")
        for name in admission.BINDING_NAMES:
            binding = await self._read("validatingadmissionpolicybindings", name)
            if binding is None:
                missing.append(f"ValidatingAdmissionPolicyBinding/{name}")
            else:
                audiences |= await self._param_audiences(binding)
        changed = not self._checked or tuple(missing) != self.missing
        self._checked = True
        self.installed, self.missing = not missing, tuple(missing)
        self.api_audiences = frozenset(audiences)
        if changed and missing:
            logger.warning(
                "admission policies missing (%s): withholding Secrets and tokens",
                ", ".join(missing),
            )
        elif changed:
            logger.info("admission policies installed; API audiences: %s", sorted(audiences))

    async def _read(self, kind: str, name: str) -> dict[str, object] | None:
        """The object, or None when it is missing or we may not see it (both mean: missing)."""
        assert self._api is not None
        try:
            return await self._api.read_admission(kind, name)
        except NotFoundError:
            return None
        except ApiError as error:
            if error.status == 403:
                return None
            raise

    async def _param_audiences(self, binding: dict[str, object]) -> set[str]:
        assert self._api is not None
        spec = binding.get("spec")
        reference = spec.get("paramRef") if isinstance(spec, dict) else None
        if not isinstance(reference, dict) or not reference.get("name"):
            return set()
        try:
            config_map = await self._api.read_config_map(
                str(reference.get("namespace") or ""), str(reference["name"])
            )
        except KubeApiError as error:
            if isinstance(error, NotFoundError) or getattr(error, "status", 0) == 403:
                return set()
            raise
        try:
            _users, audiences = admission.parse_params(config_map.get("data"))
        except admission.AdmissionParamsError as error:
            logger.warning("the admission parameter is not usable: %s", error)
            return set()
        return set(audiences)

    async def run(self) -> None:
        """Check now, then every interval, until cancelled; an API error keeps the last answer."""
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("could not check the admission policies: %s", error)
            await asyncio.sleep(self._interval)


def _in_cluster_token() -> str | None:
    with contextlib.suppress(OSError):
        return IN_CLUSTER_TOKEN.read_text().strip()
    return None
