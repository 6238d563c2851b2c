"""The CLI as a user runs it: a subprocess of this interpreter, against a kubeconfig."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(
    kubeconfig: Path, namespace: str, command: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """``durable-search COMMAND --kubeconfig … -n NAMESPACE ARGS…``; never raises on exit code."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "durable_search.cli",
            command,
            f"--kubeconfig={kubeconfig}",
            "-n",
            namespace,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
