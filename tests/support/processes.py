"""The operator and the web service as real subprocesses: started, probed, killed (-9 too)."""

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


class ServiceProcess:
    """``durable-search <command> ...`` with its log in a file, ready when ``/readyz`` says so."""

    name = "service"

    def __init__(self, kubeconfig: Path, log: Path, args: Sequence[str], log_level: str) -> None:
        self.kubeconfig = kubeconfig
        self.log = log
        self.args = list(args)
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def ready_url(self) -> str:
        raise NotImplementedError

    def start(self, timeout: float = 30) -> ServiceProcess:
        process = self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"the {self.name} exited at start:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the {self.name} was not ready within {timeout}s:\n{self.tail()}")

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the process, not waiting for it to be ready (``start`` waits)."""
        command = [
            sys.executable,
            "-m",
            "durable_search.cli",
            *self.command(),
            f"--kubeconfig={self.kubeconfig}",
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
        return self.process

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


class OperatorProcess(ServiceProcess):
    name = "operator"

    def __init__(
        self, kubeconfig: Path, log: Path, args: Sequence[str], log_level: str = "debug"
    ) -> None:
        super().__init__(kubeconfig, log, args, log_level)
        self.health_port = free_port()

    def command(self) -> list[str]:
        return ["operator", f"--health-port={self.health_port}"]

    @property
    def ready_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/readyz"

    def start(self, timeout: float = 30) -> OperatorProcess:
        super().start(timeout)
        return self


class WebProcess(ServiceProcess):
    name = "web service"

    def __init__(
        self,
        kubeconfig: Path,
        log: Path,
        namespace: str,
        args: Sequence[str] = (),
        log_level: str = "debug",
    ) -> None:
        super().__init__(kubeconfig, log, args, log_level)
        self.namespace = namespace
        self.port = free_port()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return ["web", f"--namespace={self.namespace}", f"--port={self.port}"]

    @property
    def ready_url(self) -> str:
        return f"{self.base}/readyz"

    def start(self, timeout: float = 30) -> WebProcess:
        super().start(timeout)
        return self
