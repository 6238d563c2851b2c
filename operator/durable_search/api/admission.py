"""The admission policies that keep tenants from borrowing the operator's rights (names only).

The operator resolves Secrets and mints tokens only while these ValidatingAdmissionPolicies and
their bindings exist: they are what guarantees that whoever wrote an object may read every
Secret it names. ``manifests/policies/`` holds them.
"""

from __future__ import annotations

from collections.abc import Mapping

POLICY_NAMES = (
    "durable-search-httptasks",
    "durable-search-searches",
    "durable-search-searchproviders",
)
BINDING_NAMES = POLICY_NAMES
PARAM_OPERATOR_USERS = "operatorUsers"
PARAM_API_AUDIENCES = "apiAudiences"


def parse_list(value: str | None) -> frozenset[str]:
    """A parameter list: comma- or newline-separated, blanks ignored."""
    if not value:
        return frozenset()
    return frozenset(part.strip() for part in value.replace("\n", ",").split(",") if part.strip())


def parse_params(data: Mapping[str, str] | None) -> tuple[frozenset[str], frozenset[str]]:
    """``(operator users, API audiences)`` from the policies' parameter ConfigMap data."""
    data = data or {}
    return parse_list(data.get(PARAM_OPERATOR_USERS)), parse_list(data.get(PARAM_API_AUDIENCES))
