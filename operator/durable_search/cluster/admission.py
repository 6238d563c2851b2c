"""The admission policies on the local control plane (``make up``, the tests) and on ``current``.

The policies and bindings are ``api.policies``' (the files in ``manifests/policies/``); the
bindings name the parameter's namespace, and the parameter says who the operator is and which
audiences the API server accepts. Locally the operator runs with the admin certificate
(``pki.ADMIN_USER``) and the API server's only audience is its ServiceAccount issuer,
``<server>/`` (kube-apiserver's ``--api-audiences`` defaults to its issuers).

An applied policy takes a moment to be enforced (the API server compiles it from a watch):
:func:`enforcement_probes` are dry-run creates that only an enforcing policy refuses, with
:data:`PROBE_MESSAGE`, whoever sends them (the distinct-Secret bound applies to the admin too).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import yaml

from durable_search.api.admission import LOCAL_PARAM_NAMESPACE, MAX_DISTINCT_SECRETS
from durable_search.api.constants import API_VERSION, HTTPTASK_KIND, PROVIDER_KIND, SEARCH_KIND
from durable_search.api.policies import (
    bindings,
    immutability_bindings,
    immutability_policies,
    params_configmap,
    policies,
)
from durable_search.cluster.pki import ADMIN_USER

Document = dict[str, Any]

PROBE_MESSAGE = f"names {MAX_DISTINCT_SECRETS + 1} distinct Secrets"


def local_issuer(server: str) -> str:
    """The local API server's ``--service-account-issuer``, hence its one API audience."""
    return f"{server.rstrip('/')}/"


def admission_documents(
    namespace: str, operator_users: Iterable[str], api_audiences: Iterable[str]
) -> list[Document]:
    """In the order to apply: the parameter exists before a binding that needs it."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        params_configmap(namespace, operator_users, api_audiences),
        *policies(),
        *immutability_policies(),
        *bindings(namespace),
        *immutability_bindings(),
    ]


def local_admission(server: str, namespace: str = LOCAL_PARAM_NAMESPACE) -> list[Document]:
    """The admission setup of the local control plane at ``server``."""
    return admission_documents(namespace, [ADMIN_USER], [local_issuer(server)])


def render(documents: Iterable[Document]) -> str:
    return yaml.safe_dump_all(list(documents), sort_keys=False)


def _headers(count: int) -> list[Document]:
    return [
        {"name": f"X-Probe-{i}", "valueFrom": {"secretKeyRef": {"name": f"probe-{i}", "key": "k"}}}
        for i in range(count)
    ]


def enforcement_probes(namespace: str) -> list[Document]:
    """One object per policy that it refuses with PROBE_MESSAGE (for a dry-run create)."""
    headers = _headers(MAX_DISTINCT_SECRETS + 1)
    url = "https://probe.invalid/?q={query}"
    meta = {"name": "admission-probe", "namespace": namespace}
    provider = {"name": "p", "url": url, "headers": headers}
    return [
        {
            "apiVersion": API_VERSION,
            "kind": HTTPTASK_KIND,
            "metadata": meta,
            "spec": {"request": {"url": "https://probe.invalid/", "headers": headers}},
        },
        {
            "apiVersion": API_VERSION,
            "kind": SEARCH_KIND,
            "metadata": meta,
            "spec": {"query": "probe", "providers": [provider]},
        },
        {
            "apiVersion": API_VERSION,
            "kind": PROVIDER_KIND,
            "metadata": meta,
            "spec": {"url": url, "headers": headers},
        },
    ]


def wait_until_enforced(
    dry_run_create: Callable[[str], str], namespace: str, timeout: float = 30.0
) -> None:
    """Until every policy refuses its probe; ``dry_run_create`` returns the server's answer."""
    deadline = time.monotonic() + timeout
    pending = enforcement_probes(namespace)
    answer = ""
    while pending:
        answer = dry_run_create(render([pending[0]]))
        if PROBE_MESSAGE in answer:
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            kind = pending[0]["kind"]
            raise RuntimeError(
                f"the admission policy for {kind} is not enforced after {timeout:.0f}s: {answer}"
            )
        time.sleep(0.2)


def apply_and_wait(
    kubectl: Sequence[str],
    documents: Iterable[Document],
    namespace: str,
    env: Mapping[str, str] | None = None,
) -> None:
    """``kubectl apply`` the admission setup, then wait until the policies are enforced.

    ``kubectl`` is the command to run it with (e.g. ``["kubectl", "--kubeconfig=..."]``).
    """
    applied = subprocess.run(
        [*kubectl, "apply", "-f", "-"],
        input=render(documents),
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if applied.returncode != 0:
        raise RuntimeError(f"applying the admission policies failed:\n{applied.stderr.strip()}")

    def dry_run_create(manifest: str) -> str:
        result = subprocess.run(
            [*kubectl, "create", "--dry-run=server", "-f", "-"],
            input=manifest,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            check=False,
        )
        return result.stdout + result.stderr

    wait_until_enforced(dry_run_create, namespace)
