"""Kubeconfig variants for tests that act as someone other than the admin."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from tests.support.fixtures import Kubectl


def kubeconfig_with_token(admin_kubeconfig: Path, token: str, destination: Path) -> Path:
    """A copy of ``admin_kubeconfig`` whose only credential is the bearer ``token``."""
    config = yaml.safe_load(admin_kubeconfig.read_text())
    config["users"] = [{"name": "token-user", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "token-user"
    destination.write_text(yaml.safe_dump(config))
    destination.chmod(0o600)
    return destination


def token_for(kubectl: Kubectl, namespace: str, account: str, *rules: tuple[str, str]) -> str:
    """A ServiceAccount token, with a Role granting ``(verbs, resources)`` pairs if given."""
    kubectl("create", "serviceaccount", account, "-n", namespace)
    for index, (verbs, resources) in enumerate(rules):
        role = f"{account}-{index}"
        kubectl(
            "create", "role", role, f"--verb={verbs}", f"--resource={resources}", "-n", namespace
        )
        kubectl(
            "create",
            "rolebinding",
            role,
            f"--role={role}",
            f"--serviceaccount={namespace}:{account}",
            "-n",
            namespace,
        )
    return kubectl("create", "token", account, "-n", namespace).strip()
