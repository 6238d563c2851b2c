"""Where the cluster is: ``--kubeconfig``/``KUBECONFIG``, in-cluster, then ``~/.kube/config``."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.config import kube_config

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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


def context_namespace(kubeconfig: str | None = None) -> str:
    """The kubeconfig context's namespace when a kubeconfig is named, else the Pod's in a
    cluster, else the context's of ``KUBECONFIG``, else ``default``."""
    if kubeconfig:
        with contextlib.suppress(Exception):
            _contexts, active = kube_config.list_kube_config_contexts(kubeconfig)
            return str((active or {}).get("context", {}).get("namespace") or "default")
    with contextlib.suppress(OSError):
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    with contextlib.suppress(Exception):
        _contexts, active = kube_config.list_kube_config_contexts(os.environ.get("KUBECONFIG"))
        namespace = (active or {}).get("context", {}).get("namespace")
        if namespace:
            return str(namespace)
    return "default"
