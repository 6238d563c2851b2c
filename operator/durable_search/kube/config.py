"""Where the cluster is: ``--kubeconfig``, in-cluster, then ``KUBECONFIG``/``~/.kube/config``."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from durable_search.kube.kubeconfig import (
    SERVICE_ACCOUNT,
    Connection,
    Kubeconfig,
    kubeconfig_paths,
    load_connection,
)

SERVICE_ACCOUNT_NAMESPACE: Path = SERVICE_ACCOUNT / "namespace"


async def load_configuration(kubeconfig: str | None) -> Connection:
    """``--kubeconfig``, then the in-cluster account, then ``KUBECONFIG``/``~/.kube/config``.

    Read in a thread: an exec credential plugin may take a while to answer.
    """
    return await asyncio.to_thread(load_connection, kubeconfig)


def context_namespace(kubeconfig: str | None = None) -> str:
    """The kubeconfig context's namespace when a kubeconfig is named, else the Pod's in a
    cluster, else the context's of ``KUBECONFIG``, else ``default``."""
    if kubeconfig:
        with contextlib.suppress(Exception):
            return Kubeconfig.read(kubeconfig_paths(kubeconfig)).namespace()
    with contextlib.suppress(OSError):
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    with contextlib.suppress(Exception):
        return Kubeconfig.read(kubeconfig_paths()).namespace()
    return "default"
