"""The ValidatingAdmissionPolicies that guard Secret and token references, generated.

``manifests/policies/`` is written from here (``make policies``; the chart carries a copy of the
policies file) and a unit test fails when either drifts. Each kind lists its *Secret sources*
(CEL lists of ``{'name', 'field'}``: the Secret's name and the field that names it) and its
*token sources*; the rest is the same for every kind:

- the distinct Secrets and ConfigMaps (at most ``MAX_DISTINCT_SECRETS`` together, each one an
  ``authorizer`` check of ``get`` on that object by the requesting user): one validation per
  index, because a check
  costs 350,000 of CEL's 1,000,000 per expression (the binding's budget is 10,000,000);
- for ``auth.serviceAccountToken``: ``create`` on ``serviceaccounts/token`` for that
  ServiceAccount, and, for anyone but the operator users of the parameter, no token for the
  operator's own ServiceAccounts or for an audience the API server accepts.

Kubernetes 1.33's CEL has no ``distinct``, ``flatten``, ``lists.range`` or ``slice``; it has
``indexOf`` and the two-variable ``transformList``, which find the distinct names, and a
Search's inline providers (at most 16) are joined by unrolling. Adding a Secret source (e.g.
``request.bodyFrom.secretKeyRef``) is one more entry in a kind's list; each entry says which
``resource`` it names (``secrets`` or ``configmaps``) and its ``kind`` for the message.

ConfigMaps are checked too (``request.bodyFrom.configMapKeyRef``, ``request.tls.caBundleFrom``),
though the contract asks only for Secrets: the operator reads them with its own rights, and a
body read from a ConfigMap is sent to a URL the author chose, so a tenant who could not read a
ConfigMap could otherwise have the operator send it to them (a confused deputy).

Pure: builds documents; ``write_all`` is the only I/O.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from durable_search.api.admission import (
    DEFAULT_API_AUDIENCES,
    LOCAL_PARAM_NAMESPACE,
    MAX_DISTINCT_SECRETS,
    MAX_SECRET_REFERENCES,
    PARAM_API_AUDIENCES,
    PARAM_CONFIGMAP,
    PARAM_OPERATOR_USERS,
    PARAM_SEPARATOR,
    POLICY_HTTPTASKS,
    POLICY_SEARCHES,
    POLICY_SEARCHPROVIDERS,
    params_data,
    service_account_user,
)
from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, PROVIDER_PLURAL, SEARCH_PLURAL
from durable_search.api.constants import VERSION as API_VERSION

Document = dict[str, Any]

POLICIES_FILE = "validatingadmissionpolicies.yaml"
BINDINGS_FILE = "bindings.yaml"
PARAMS_FILE = "params.yaml"
# The schema's bound on a Search's inline providers (a unit test keeps them equal).
MAX_INLINE_PROVIDERS = 16
LABELS = {"app.kubernetes.io/name": "durable-search", "app.kubernetes.io/component": "admission"}


@dataclass(frozen=True)
class Kind:
    """What one policy guards: its resource, when it looks, and what the object names."""

    policy: str
    plural: str
    # matchConditions (name, CEL): all must hold for the object to be checked at all.
    conditions: tuple[tuple[str, str], ...]
    # Variables evaluated before the sources (name, CEL), e.g. a shorthand for a sub-object.
    preamble: tuple[tuple[str, str], ...]
    # Secret sources (variable name, CEL list of {'name': secret, 'field': where}).
    secret_sources: tuple[tuple[str, str], ...]
    # The path (without ``object.``) of each auth object that may hold a serviceAccountToken.
    token_sources: tuple[str, ...] = ()


_SECRET = "'resource': 'secrets', 'kind': 'Secret'"
_CONFIG_MAP = "'resource': 'configmaps', 'kind': 'ConfigMap'"


def _header_refs(headers: str, field: str) -> str:
    """The Secret references of a headers list (``field`` is a CEL string expression)."""
    return (
        f"{headers}.filter(h, has(h.valueFrom)).map(h, "
        f"{{'name': string(h.valueFrom.secretKeyRef.name), 'field': {field}, {_SECRET}}})"
    )


def _secret_key_ref(parent: str, field: str) -> str:
    """One ``{'name', 'field', ...}`` for the ``secretKeyRef`` under ``parent``."""
    return f"{{'name': string({parent}.secretKeyRef.name), 'field': '{field}', {_SECRET}}}"


def _request_refs(parent: str, field: str) -> str:
    """The Secrets and ConfigMaps a request's ``bodyFrom`` and ``tls`` name (a CEL list).

    ``parent`` is the object holding ``bodyFrom`` and ``tls`` (a request, or a provider);
    ``field`` its path for messages, as a CEL string expression.
    """
    body = f"{parent}.bodyFrom"
    tls = f"{parent}.tls"
    return (
        f"(has({body}) ? [has({body}.secretKeyRef)\n"
        f"    ? {{'name': string({body}.secretKeyRef.name),"
        f" 'field': {field} + '.bodyFrom.secretKeyRef', {_SECRET}}}\n"
        f"    : {{'name': string({body}.configMapKeyRef.name),"
        f" 'field': {field} + '.bodyFrom.configMapKeyRef', {_CONFIG_MAP}}}] : [])\n"
        f"+ (has({tls}) && has({tls}.clientCertificateFrom)\n"
        f"    ? [{{'name': string({tls}.clientCertificateFrom.secretName),"
        f" 'field': {field} + '.tls.clientCertificateFrom', {_SECRET}}}] : [])\n"
        f"+ (has({tls}) && has({tls}.caBundleFrom)\n"
        f"    ? [{{'name': string({tls}.caBundleFrom.configMapKeyRef.name),"
        f" 'field': {field} + '.tls.caBundleFrom', {_CONFIG_MAP}}}] : [])"
    )


def _names_a_source(parent: str) -> str:
    """Whether the object holding ``bodyFrom``/``tls`` may name a Secret or ConfigMap."""
    return f"has({parent}.bodyFrom) || has({parent}.tls)"


_OAUTH2 = "variables.request.auth.oauth2ClientCredentials"
_OAUTH2_FIELD = "spec.request.auth.oauth2ClientCredentials"

HTTPTASKS = Kind(
    policy=POLICY_HTTPTASKS,
    plural=HTTPTASK_PLURAL,
    # spec.request is immutable (the CRD says so) and every other field but terminate too, so
    # an update is checked only if it could change what the request names.
    conditions=(
        (
            "request-created-or-changed",
            "request.operation == 'CREATE' || object.spec.request != oldObject.spec.request",
        ),
        # Most tasks name no credential at all: skip the rest of the policy for them (it runs
        # on every create, the operator's fan-out included).
        (
            "names-a-credential",
            "has(object.spec.request.auth) || (has(object.spec.request.headers)"
            " && object.spec.request.headers.exists(h, has(h.valueFrom)))"
            " || " + _names_a_source("object.spec.request"),
        ),
    ),
    preamble=(("request", "object.spec.request"),),
    secret_sources=(
        (
            "headerSecrets",
            "has(variables.request.headers)\n? "
            + _header_refs("variables.request.headers", "'spec.request.headers'")
            + "\n: []",
        ),
        (
            "oauth2Secrets",
            "has(variables.request.auth) && has(variables.request.auth.oauth2ClientCredentials)\n"
            "? ["
            + _secret_key_ref(f"{_OAUTH2}.clientId", f"{_OAUTH2_FIELD}.clientId")
            + ",\n   "
            + _secret_key_ref(f"{_OAUTH2}.clientSecret", f"{_OAUTH2_FIELD}.clientSecret")
            + "]\n: []",
        ),
        ("requestSources", _request_refs("variables.request", "'spec.request'")),
    ),
    token_sources=("spec.request.auth",),
)


def _joined_provider_secrets() -> str:
    # No flatten() on 1.33: join the per-provider lists by index, up to the schema's bound.
    return "\n+ ".join(
        f"(size(variables.providerSecrets) > {i} ? variables.providerSecrets[{i}] : [])"
        for i in range(MAX_INLINE_PROVIDERS)
    )


SEARCHES = Kind(
    policy=POLICY_SEARCHES,
    plural=SEARCH_PLURAL,
    # A Search that names SearchProviders (or none: every provider) uses its providers' own
    # delegation and is not checked at all; only inline providers name Secrets.
    conditions=(
        ("has-inline-providers", "has(object.spec.providers)"),
        (
            "names-a-secret",
            "object.spec.providers.exists(p, (has(p.headers)"
            " && p.headers.exists(h, has(h.valueFrom))) || " + _names_a_source("p") + ")",
        ),
        (
            "providers-created-or-changed",
            "request.operation == 'CREATE' || !has(oldObject.spec.providers)"
            " || object.spec.providers != oldObject.spec.providers",
        ),
    ),
    preamble=(
        (
            "providerSecrets",
            "object.spec.providers.map(p, (has(p.headers)\n  ? "
            + _header_refs("p.headers", "'spec.providers[' + p.name + '].headers'")
            + "\n  : [])\n+ "
            + _request_refs("p", "'spec.providers[' + p.name + ']'")
            + ")",
        ),
    ),
    secret_sources=(("headerSecrets", _joined_provider_secrets()),),
)

SEARCHPROVIDERS = Kind(
    policy=POLICY_SEARCHPROVIDERS,
    plural=PROVIDER_PLURAL,
    # A SearchProvider's spec may change: any change (its URL too) is checked, since the Secrets
    # it names are sent wherever it points.
    conditions=(
        (
            "spec-created-or-changed",
            "request.operation == 'CREATE' || object.spec != oldObject.spec",
        ),
        (
            "names-a-secret",
            "(has(object.spec.headers) && object.spec.headers.exists(h, has(h.valueFrom)))"
            " || " + _names_a_source("object.spec"),
        ),
    ),
    preamble=(),
    secret_sources=(
        (
            "headerSecrets",
            "has(object.spec.headers) ? "
            + _header_refs("object.spec.headers", "'spec.headers'")
            + " : []",
        ),
        ("requestSources", _request_refs("object.spec", "'spec'")),
    ),
)

KINDS: tuple[Kind, ...] = (HTTPTASKS, SEARCHES, SEARCHPROVIDERS)


def _param_list(key: str) -> str:
    # The same reading as api.admission.parse_list: split, trim, drop empty entries.
    return (
        f"params.?data.?{key}.orValue('').split('{PARAM_SEPARATOR}')"
        ".map(e, e.trim()).filter(e, e != '')"
    )


def _common_variables(kind: Kind) -> list[tuple[str, str]]:
    refs = " + ".join(f"variables.{name}" for name, _ in kind.secret_sources)
    return [
        ("secretRefs", refs),
        ("tooManyRefs", f"size(variables.secretRefs) > {MAX_SECRET_REFERENCES}"),
        # A ConfigMap and a Secret of one name are two objects: distinct by resource and name.
        ("secretNames", "variables.secretRefs.map(r, r.resource + '/' + r.name)"),
        # The first reference of each distinct object, in order: indexOf finds the first.
        (
            "secrets",
            "variables.tooManyRefs ? [] : variables.secretRefs.transformList(i, r,"
            " variables.secretNames.indexOf(r.resource + '/' + r.name) == i, r)",
        ),
        ("tooManySecrets", f"size(variables.secrets) > {MAX_DISTINCT_SECRETS}"),
        ("namesConfigMaps", "variables.secrets.exists(r, r.resource == 'configmaps')"),
    ]


def _token_variables(path: str) -> list[tuple[str, str]]:
    auth = f"object.{path}"
    token = f"{auth}.serviceAccountToken"
    return [
        ("operatorUsers", _param_list(PARAM_OPERATOR_USERS)),
        ("apiAudiences", _param_list(PARAM_API_AUDIENCES)),
        (
            "paramsComplete",
            f"has(params.data) && '{PARAM_OPERATOR_USERS}' in params.data"
            f" && '{PARAM_API_AUDIENCES}' in params.data",
        ),
        ("byOperator", "request.userInfo.username in variables.operatorUsers"),
        ("hasToken", f"has({auth}) && has({token})"),
        (
            "tokenUser",
            f"variables.hasToken ? 'system:serviceaccount:' + request.namespace + ':'"
            f" + {token}.serviceAccountName : ''",
        ),
    ]


def _validation(
    expression: str, reason: str, *, message: str = "", message_expression: str = ""
) -> Document:
    validation: Document = {"expression": expression}
    if message:
        validation["message"] = message
    if message_expression:
        validation["messageExpression"] = message_expression
    validation["reason"] = reason
    return validation


def _secret_validations() -> list[Document]:
    validations = [
        _validation(
            "!variables.tooManyRefs",
            "Invalid",
            message=f"names more than {MAX_SECRET_REFERENCES} Secret references",
            message_expression=(
                "'names ' + string(size(variables.secretRefs)) + ' Secret references; at most "
                f"{MAX_SECRET_REFERENCES} are allowed'"
            ),
        ),
        _validation(
            "!variables.tooManySecrets",
            "Invalid",
            message=f"names more than {MAX_DISTINCT_SECRETS} distinct Secrets",
            message_expression=(
                "'names ' + string(size(variables.secrets)) + ' distinct Secrets'"
                " + (variables.namesConfigMaps ? ' and ConfigMaps' : '') + '; at most "
                f"{MAX_DISTINCT_SECRETS} are allowed'"
            ),
        ),
    ]
    for i in range(MAX_DISTINCT_SECRETS):
        validations.append(
            _validation(
                f"variables.tooManySecrets || size(variables.secrets) <= {i}\n"
                f"|| authorizer.group('').resource(variables.secrets[{i}].resource)"
                f".namespace(request.namespace).name(variables.secrets[{i}].name)"
                ".check('get').allowed()",
                "Forbidden",
                message="user may not get a Secret (or ConfigMap) the object names",
                message_expression=(
                    f"size(variables.secrets) > {i}"
                    f" ? 'user may not get ' + variables.secrets[{i}].kind + ' \"'"
                    f" + variables.secrets[{i}].name"
                    f" + '\" named by ' + variables.secrets[{i}].field : ''"
                ),
            )
        )
    return validations


def _token_validations(path: str) -> list[Document]:
    token = f"object.{path}.serviceAccountToken"
    field = f"{path}.serviceAccountToken"
    return [
        _validation(
            "!variables.hasToken\n"
            "|| authorizer.group('').resource('serviceaccounts').subresource('token')"
            f".namespace(request.namespace).name({token}.serviceAccountName)"
            ".check('create').allowed()",
            "Forbidden",
            message=f"user may not create the token {field} names",
            message_expression=(
                "variables.hasToken ? 'user may not create a token for ServiceAccount \"'"
                f" + {token}.serviceAccountName + '\" (serviceaccounts/token) named by {field}'"
                " : ''"
            ),
        ),
        _validation(
            "!variables.hasToken || variables.paramsComplete",
            "Forbidden",
            message=(
                f"the admission parameter ConfigMap {PARAM_CONFIGMAP} lacks "
                f"{PARAM_OPERATOR_USERS} or {PARAM_API_AUDIENCES}: no token may be requested"
            ),
        ),
        _validation(
            "!variables.hasToken || variables.byOperator"
            " || !(variables.tokenUser in variables.operatorUsers)",
            "Forbidden",
            message=f"{field} names the operator's own ServiceAccount",
            message_expression=(
                "variables.hasToken ? '" + field + " names ServiceAccount \"' + "
                f"{token}.serviceAccountName + '\", which is the operator: only the operator "
                "may use its token' : ''"
            ),
        ),
        _validation(
            "!variables.hasToken || variables.byOperator"
            f" || !({token}.audience in variables.apiAudiences)",
            "Forbidden",
            message=f"{field} asks for an audience the Kubernetes API server accepts",
            message_expression=(
                f"variables.hasToken ? '{field} asks for audience \"' + {token}.audience"
                " + '\", which the Kubernetes API server accepts: only the operator may "
                "request such a token' : ''"
            ),
        ),
    ]


def policy(kind: Kind) -> Document:
    variables = [*kind.preamble, *kind.secret_sources, *_common_variables(kind)]
    validations = _secret_validations()
    for path in kind.token_sources:
        variables += _token_variables(path)
        validations += _token_validations(path)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": kind.policy, "labels": dict(LABELS)},
        "spec": {
            "failurePolicy": "Fail",
            "paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": [API_VERSION],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [kind.plural],
                    }
                ]
            },
            "matchConditions": [{"name": n, "expression": e} for n, e in kind.conditions],
            "variables": [{"name": n, "expression": e} for n, e in variables],
            "validations": validations,
        },
    }


# Fields that never change once an object exists (terminate changes once, false to true).
FROZEN_FIELDS: dict[str, tuple[str, ...]] = {
    HTTPTASK_PLURAL: (
        "request",
        "deadlineSeconds",
        "attemptTimeoutSeconds",
        "retry",
        "async",
        "redirects",
        "response",
        "successCondition",
        "outputs",
    ),
    SEARCH_PLURAL: (
        "query",
        "providers",
        "providerRefs",
        "deadlineSeconds",
        "overrides",
        "ttlSecondsAfterFinished",
    ),
}
IMMUTABLE = {plural: f"durable-search-immutable-{plural}" for plural in FROZEN_FIELDS}


# A Search's terminate reason goes with the switch: once terminating, it is history.
_REASON_FROZEN: list[Document] = [
    {
        "expression": "!oldObject.spec.?terminate.orValue(false) || "
        "object.spec.?terminateReason == oldObject.spec.?terminateReason",
        "message": "terminateReason cannot change once terminate is true",
        "reason": "Invalid",
    }
]


def immutability_policy(plural: str) -> Document:
    """The spec is immutable but for a one-way ``terminate``.

    An admission policy, not CRD transition rules: a CRD rule on ``spec`` runs on every write
    of the object, status writes included (the operator's hot path), where nothing in ``spec``
    can change; a policy bound to the main resource runs only when someone updates the object.
    """
    kind = "HttpTask" if plural == HTTPTASK_PLURAL else "Search"
    same = " && ".join(f"object.spec.?{f} == oldObject.spec.?{f}" for f in FROZEN_FIELDS[plural])
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": IMMUTABLE[plural], "labels": dict(LABELS)},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": [API_VERSION],
                        "operations": ["UPDATE"],
                        "resources": [plural],
                    }
                ]
            },
            "validations": [
                {
                    "expression": same,
                    "message": f"{kind} spec is immutable: only terminate may change (from "
                    "false to true)",
                    "reason": "Invalid",
                },
                {
                    "expression": "!oldObject.spec.?terminate.orValue(false) || "
                    "object.spec.?terminate.orValue(false)",
                    "message": "terminate cannot be set back to false",
                    "reason": "Invalid",
                },
                *(_REASON_FROZEN if plural == SEARCH_PLURAL else []),
            ],
        },
    }


def immutability_binding(plural: str) -> Document:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": IMMUTABLE[plural], "labels": dict(LABELS)},
        "spec": {"policyName": IMMUTABLE[plural], "validationActions": ["Deny"]},
    }


def policies() -> list[Document]:
    """The three credential policies (the operator checks these exist)."""
    return [policy(kind) for kind in KINDS]


def immutability_policies() -> list[Document]:
    return [immutability_policy(plural) for plural in FROZEN_FIELDS]


def immutability_bindings() -> list[Document]:
    return [immutability_binding(plural) for plural in FROZEN_FIELDS]


def binding(policy_name: str, param_namespace: str) -> Document:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy_name, "labels": dict(LABELS)},
        "spec": {
            "policyName": policy_name,
            "validationActions": ["Deny"],
            "paramRef": {
                "name": PARAM_CONFIGMAP,
                "namespace": param_namespace,
                "parameterNotFoundAction": "Deny",
            },
        },
    }


def bindings(param_namespace: str = LOCAL_PARAM_NAMESPACE) -> list[Document]:
    return [binding(kind.policy, param_namespace) for kind in KINDS]


def params_configmap(
    namespace: str, operator_users: Iterable[str], api_audiences: Iterable[str]
) -> Document:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": PARAM_CONFIGMAP, "namespace": namespace, "labels": dict(LABELS)},
        "data": params_data(operator_users, api_audiences),
    }


class _Dumper(yaml.SafeDumper):
    """CEL as literal blocks (no YAML quoting or folding inside an expression), for reading."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value or "'" in value or len(value) > 80 else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render(documents: Sequence[Document], header: str) -> str:
    return header + yaml.dump_all(
        documents, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True
    )


HEADER = (
    "# Generated by `make policies` from operator/durable_search/api/policies.py: do not edit.\n"
)
PARAMS_HEADER = (
    HEADER + "# The policies' parameter for the default install (namespace durable-search, the\n"
    "# operator's ServiceAccount durable-search-operator). Entries are comma-separated.\n"
)


def default_params() -> Document:
    """The parameter the chart (and the kustomize base) writes with their defaults."""
    return params_configmap(
        LOCAL_PARAM_NAMESPACE,
        [service_account_user(LOCAL_PARAM_NAMESPACE, "durable-search-operator")],
        DEFAULT_API_AUDIENCES,
    )


def files() -> dict[str, str]:
    """``manifests/policies/``: the policies, their bindings, and the default parameter."""
    return {
        POLICIES_FILE: render([*policies(), *immutability_policies()], HEADER),
        BINDINGS_FILE: render([*bindings(), *immutability_bindings()], HEADER),
        PARAMS_FILE: render([default_params()], PARAMS_HEADER),
    }


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "manifests/policies")):
        print(written_path)
