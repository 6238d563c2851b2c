"""A status write the API server denies for good is a RefusedError, whatever its 4xx."""

from __future__ import annotations

from typing import Any

import pytest

from durable_search.errors import ApiError, RefusedError
from durable_search.kube.api import KubeApi

pytestmark = pytest.mark.unit

BODY = {"metadata": {"namespace": "ns", "name": "t", "resourceVersion": "7"}, "status": {}}


class Refusing:
    def __init__(self, status: int) -> None:
        self.status = status

    async def merge_patch(self, path: str, patch: Any) -> Any:
        raise ApiError("denied by admission webhook", self.status)


@pytest.mark.parametrize("status", [400, 403, 405, 413, 415, 422])
async def test_a_denied_status_write_is_refused_for_good(status: int) -> None:
    api = KubeApi(Refusing(status))  # type: ignore[arg-type]
    with pytest.raises(RefusedError) as raised:
        await api.write_status("httptasks", BODY, {"phase": "Succeeded"})
    assert raised.value.status == status and "webhook" in raised.value.message


@pytest.mark.parametrize("status", [401, 408, 429, 500, 503])
async def test_credentials_throttling_and_server_errors_stay_api_errors(status: int) -> None:
    api = KubeApi(Refusing(status))  # type: ignore[arg-type]
    with pytest.raises(ApiError):
        await api.write_status("httptasks", BODY, {"phase": "Succeeded"})
