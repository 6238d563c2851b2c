"""Writes the admin kubeconfig of the local control plane (certificates embedded, mode 0600)."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from durable_search.cluster.pki import Pki

CONTEXT_NAME = "durable-search-local"


def write_kubeconfig(path: Path, server: str, pki: Pki, namespace: str = "default") -> None:
    def data(file: Path) -> str:
        return base64.b64encode(file.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT_NAME,
                "cluster": {"server": server, "certificate-authority-data": data(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": f"{CONTEXT_NAME}-admin",
                "user": {
                    "client-certificate-data": data(pki.admin_cert),
                    "client-key-data": data(pki.admin_key),
                },
            }
        ],
        "contexts": [
            {
                "name": CONTEXT_NAME,
                "context": {
                    "cluster": CONTEXT_NAME,
                    "user": f"{CONTEXT_NAME}-admin",
                    "namespace": namespace,
                },
            }
        ],
        "current-context": CONTEXT_NAME,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.touch(mode=0o600)
    temporary.chmod(0o600)
    temporary.write_text(yaml.safe_dump(config, sort_keys=False))
    temporary.replace(path)
