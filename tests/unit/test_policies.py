"""manifests/policies/ is generated from api/policies.py; the chart ships the same policies."""

from __future__ import annotations

from pathlib import Path

import yaml

from durable_search.api import admission, policies
from durable_search.api.schema import all_crds

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "manifests" / "policies"
CHART_COPY = REPO / "charts" / "durable-search" / "files" / policies.POLICIES_FILE


def test_manifests_policies_match_the_generator() -> None:
    actual = {path.name: path.read_text() for path in POLICIES.glob("*.yaml")}
    assert actual == policies.files(), "manifests/policies is stale: run `make policies`"


def test_the_chart_carries_the_same_policies() -> None:
    assert CHART_COPY.read_text() == policies.files()[policies.POLICIES_FILE], (
        "charts/durable-search/files is stale: run `make policies`"
    )


def test_policies_and_bindings_have_the_names_the_operator_checks() -> None:
    assert [p["metadata"]["name"] for p in policies.policies()] == list(admission.POLICY_NAMES)
    bound = policies.bindings("ns")
    assert [b["metadata"]["name"] for b in bound] == list(admission.BINDING_NAMES)
    for each in bound:
        assert each["spec"]["policyName"] == each["metadata"]["name"]
        assert each["spec"]["paramRef"] == {
            "name": admission.PARAM_CONFIGMAP,
            "namespace": "ns",
            "parameterNotFoundAction": "Deny",
        }


def test_every_policy_takes_the_configmap_parameter_and_fails_closed() -> None:
    for each in policies.policies():
        assert each["spec"]["paramKind"] == {"apiVersion": "v1", "kind": "ConfigMap"}
        assert each["spec"]["failurePolicy"] == "Fail"


def test_one_authorization_check_per_distinct_secret_index_and_at_most_two_per_expression() -> None:
    for each in policies.policies():
        validations = each["spec"]["validations"]
        # Secrets and ConfigMaps share the checks: the resource is the reference's own.
        secret_checks = [v for v in validations if "check('get')" in v["expression"]]
        assert len(secret_checks) == admission.MAX_DISTINCT_SECRETS
        for validation in validations:
            # Each check costs 350,000 of the 1,000,000 per expression.
            assert validation["expression"].count(".check(") <= 2
        # And 10,000,000 per binding.
        assert sum(v["expression"].count(".check(") for v in validations) * 350_000 < 10_000_000


def test_the_unrolled_provider_join_covers_the_schemas_bound() -> None:
    spec = all_crds()["searches.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    providers = spec["properties"]["spec"]["properties"]["providers"]
    assert providers["maxItems"] == policies.MAX_INLINE_PROVIDERS


def test_the_default_parameter_names_the_charts_operator_and_the_default_audiences() -> None:
    params = yaml.safe_load((POLICIES / policies.PARAMS_FILE).read_text())
    assert params["metadata"]["namespace"] == admission.LOCAL_PARAM_NAMESPACE
    users, audiences = admission.parse_params(params["data"])
    assert users == {"system:serviceaccount:durable-search:durable-search-operator"}
    assert audiences == set(admission.DEFAULT_API_AUDIENCES)


def test_the_immutability_policies_freeze_every_spec_field_but_terminate() -> None:
    crds = all_crds()
    for plural, fields in policies.FROZEN_FIELDS.items():
        spec = crds[f"{plural}.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        properties = set(spec["properties"]["spec"]["properties"])
        # terminateReason changes with terminate only (a rule of the same policy).
        one_way = {"terminate", "terminateReason"} if plural == "searches" else {"terminate"}
        assert properties - set(fields) == one_way, plural
    for each in policies.immutability_policies():
        rules = each["spec"]["matchConstraints"]["resourceRules"]
        assert rules[0]["operations"] == ["UPDATE"]  # not status: the policy skips those writes
        assert "paramKind" not in each["spec"]


def test_no_crd_rule_runs_on_status_writes_by_comparing_with_the_old_object() -> None:
    # A transition rule (oldSelf) on spec is evaluated on every status write of the object.
    for name, crd in all_crds().items():
        assert "oldSelf" not in str(crd), name
        assert "'default'" not in str(crd), name  # defaults: api.models applies them
