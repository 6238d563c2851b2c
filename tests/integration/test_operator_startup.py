"""The operator refuses to start where its kinds are not served, and says what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from durable_search.cluster.controlplane import ControlPlane


def test_without_crds_the_operator_exits_with_a_clear_message(tmp_path: Path) -> None:
    # A control plane of its own: the session's has the CRDs installed.
    plane = ControlPlane(tmp_path / "cp", tmp_path / "kubeconfig", fast_storage=True)
    plane.start()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "durable_search.cli",
                "operator",
                f"--kubeconfig={plane.kubeconfig}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        plane.stop()
    assert result.returncode == 1
    assert "does not serve durablesearch.dev/v1alpha1: install the CRDs first" in result.stderr
