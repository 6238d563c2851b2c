"""Kubeconfig variants for tests that act as someone other than the admin."""

from __future__ import annotations

from pathlib import Path

import yaml


def kubeconfig_with_token(admin_kubeconfig: Path, token: str, destination: Path) -> Path:
    """A copy of ``admin_kubeconfig`` whose only credential is the bearer ``token``."""
    config = yaml.safe_load(admin_kubeconfig.read_text())
    config["users"] = [{"name": "token-user", "user": {"token": token}}]
    for context in config["contexts"]:
        context["context"]["user"] = "token-user"
    destination.write_text(yaml.safe_dump(config))
    destination.chmod(0o600)
    return destination
