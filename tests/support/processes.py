"""The operator as a real subprocess: started, checked, killed (-9 too) and restarted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    def __init__(
        self, kubeconfig: Path, log: Path, args: Sequence[str], log_level: str = "debug"
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_level = log_level
        self.log = log
        self.args = list(args)
        self.health_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> OperatorProcess:
        command = [
            sys.executable,
            "-m",
            "durable_search.cli",
            "operator",
            f"--kubeconfig={self.kubeconfig}",
            f"--health-port={self.health_port}",
            f"--log-level={self.log_level}",
            *self.args,
        ]
        with self.log.open("ab") as log:
            log.write(f"\n=== start {' '.join(command)}\n".encode())
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the operator exited at start:\n{self.tail()}")
            try:
                url = f"http://127.0.0.1:{self.health_port}/readyz"
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the operator was not ready within {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        """``kill -9``: no cleanup, no last writes."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class WebProcess:
    """``durable-search web`` as a subprocess on a free port."""

    def __init__(
        self, kubeconfig: Path, log: Path, namespace: str, args: Sequence[str] = ()
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.namespace = namespace
        self.args = list(args)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> WebProcess:
        command = [
            sys.executable,
            "-m",
            "durable_search.cli",
            "web",
            f"--kubeconfig={self.kubeconfig}",
            f"--namespace={self.namespace}",
            f"--port={self.port}",
            "--log-level=debug",
            *self.args,
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the web service exited at start:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the web service was not ready within {timeout}s:\n{self.tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
