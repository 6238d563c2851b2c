"""The local control plane: etcd, kube-apiserver and kube-controller-manager on loopback.

This is the project's "envtest": the real API server (schema validation, status subresources,
RBAC, garbage collection, watches) run as plain processes, the way controller-runtime's envtest
does, plus kube-controller-manager so ownerReferences, namespaces and Deployments behave as in a
cluster. One state directory holds the certificates, the etcd data, the logs and ``state.json``
(the pids and ports this module started); ``stop`` signals exactly those pids, after checking
that each still runs the binary recorded for it, and removes the directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from durable_search.cluster.build import Binaries, ensure_binaries
from durable_search.cluster.kubeconfig import write_kubeconfig
from durable_search.cluster.pki import Pki, ensure_pki
from durable_search.errors import ControlPlaneError

_READY_TIMEOUT_SECONDS = 90.0
_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager")


@dataclass(frozen=True)
class RunningState:
    """What ``state.json`` records about a started control plane."""

    pids: dict[str, int]
    binaries: dict[str, str]
    etcd_client_port: int
    apiserver_port: int
    controller_manager_port: int
    etcd_data_dir: str

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"


class ControlPlane:
    """Starts, reuses and stops one local control plane rooted at ``state_dir``.

    ``fast_storage`` keeps etcd's data on tmpfs with ``--unsafe-no-fsync`` (tests); without it
    etcd writes to disk with fsync on (benchmarks, ``make up``).
    """

    def __init__(
        self,
        state_dir: Path,
        kubeconfig: Path,
        *,
        fast_storage: bool = False,
        binaries: Binaries | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.kubeconfig = kubeconfig
        self.fast_storage = fast_storage
        self._binaries = binaries

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def _state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def _pki(self) -> Pki:
        return Pki(self.state_dir / "pki")

    # -- queries -----------------------------------------------------------------------------

    def state(self) -> RunningState | None:
        try:
            raw = json.loads(self._state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return RunningState(**raw)

    def is_running(self) -> bool:
        """True when every recorded process is alive and the API server answers ``/readyz``."""
        state = self.state()
        if state is None:
            return False
        if not self._processes_alive(state):
            return False
        return self._readyz(state) == "ok"

    @staticmethod
    def _processes_alive(state: RunningState) -> bool:
        return all(_is_our_process(state.pids[name], state.binaries[name]) for name in _COMPONENTS)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> RunningState:
        """Start the control plane, or return the one already running here (idempotent)."""
        state = self.state()
        if state is not None and self._processes_alive(state):
            # Ours and alive: wait for it to answer rather than restart it because /readyz was
            # slow once (a busy machine, a post-start hook still settling).
            self._wait_ready(state)
            write_kubeconfig(self.kubeconfig, state.server, self._pki)
            return state
        if state is not None:
            # Half-dead leftovers from a crash: stop what remains before starting afresh.
            self.stop()
        binaries = self._binaries or ensure_binaries()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        pki = ensure_pki(self.state_dir / "pki")

        etcd_client, etcd_peer, apiserver_port, kcm_port = _free_ports(4)
        etcd_data = self._etcd_data_dir()
        pids: dict[str, int] = {}
        paths = {
            "etcd": str(binaries.etcd),
            "kube-apiserver": str(binaries.kube_apiserver),
            "kube-controller-manager": str(binaries.kube_controller_manager),
        }
        state = RunningState(
            pids=pids,
            binaries=paths,
            etcd_client_port=etcd_client,
            apiserver_port=apiserver_port,
            controller_manager_port=kcm_port,
            etcd_data_dir=str(etcd_data),
        )
        try:
            pids["etcd"] = self._spawn(
                "etcd", _etcd_args(binaries, state, etcd_peer, self.fast_storage)
            )
            self._write_state(state)
            _wait_for_tcp(etcd_client, "etcd", self.logs_dir / "etcd.log", pids["etcd"])
            pids["kube-apiserver"] = self._spawn(
                "kube-apiserver", _apiserver_args(binaries, state, pki)
            )
            self._write_state(state)
            self._wait_ready(state)
            write_kubeconfig(self.kubeconfig, state.server, pki)
            controller_kubeconfig = self.state_dir / "controller-manager.kubeconfig"
            write_kubeconfig(controller_kubeconfig, state.server, pki)
            pids["kube-controller-manager"] = self._spawn(
                "kube-controller-manager",
                _controller_manager_args(binaries, state, pki, controller_kubeconfig),
            )
            self._write_state(state)
        except BaseException:
            self.stop()
            raise
        return state

    def stop(self) -> None:
        """Stop exactly the processes this state directory started, then remove its state."""
        state = self.state()
        if state is not None:
            for name in reversed(_COMPONENTS):
                pid = state.pids.get(name)
                if pid is not None and _is_our_process(pid, state.binaries[name]):
                    _terminate(pid)
            data_dir = Path(state.etcd_data_dir)
            if data_dir.exists() and not data_dir.is_relative_to(self.state_dir):
                shutil.rmtree(data_dir, ignore_errors=True)
        # Keep the logs of a failed start for diagnosis; remove everything else.
        for child in ("pki", "etcd", "state.json", "controller-manager.kubeconfig"):
            path = self.state_dir / child
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.kubeconfig.unlink(missing_ok=True)

    def restart_apiserver(self, *, kill: bool = True, down_seconds: float = 0.0) -> float:
        """Kill kube-apiserver (``kill -9`` unless ``kill`` is False) and start it again on the
        same port and storage; seconds until it answers ``/readyz`` again. For fault runs."""
        state = self.state()
        if state is None:
            raise ControlPlaneError("the control plane is not running")
        pid = state.pids["kube-apiserver"]
        if _is_our_process(pid, state.binaries["kube-apiserver"]):
            if kill:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                while _is_alive(pid):
                    time.sleep(0.02)
            else:
                _terminate(pid)
        began = time.monotonic()
        time.sleep(down_seconds)
        binaries = self._binaries or ensure_binaries()
        state.pids["kube-apiserver"] = self._spawn(
            "kube-apiserver", _apiserver_args(binaries, state, self._pki)
        )
        self._write_state(state)
        self._wait_ready(state)
        return time.monotonic() - began

    # -- internals ---------------------------------------------------------------------------

    def _etcd_data_dir(self) -> Path:
        if self.fast_storage and Path("/dev/shm").is_dir():
            return Path(tempfile.mkdtemp(prefix="durable-search-etcd-", dir="/dev/shm"))
        path = self.state_dir / "etcd"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _spawn(self, name: str, args: list[str]) -> int:
        log = (self.logs_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the caller's terminal must not reach them.
            cwd=self.state_dir,
        )
        log.close()
        return process.pid

    def _write_state(self, state: RunningState) -> None:
        temporary = self._state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(state), indent=2))
        temporary.replace(self._state_file)

    def _readyz(self, state: RunningState) -> str | None:
        context = ssl.create_default_context(cafile=str(self._pki.ca_cert))
        context.load_cert_chain(str(self._pki.admin_cert), str(self._pki.admin_key))
        try:
            with urllib.request.urlopen(f"{state.server}/readyz", context=context, timeout=3) as r:
                body: bytes = r.read()
                return body.decode().strip()
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return None

    def _wait_ready(self, state: RunningState) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        log = self.logs_dir / "kube-apiserver.log"
        while time.monotonic() < deadline:
            if not _is_alive(state.pids["kube-apiserver"]):
                raise ControlPlaneError(f"kube-apiserver exited during startup:\n{_tail(log)}")
            if self._readyz(state) == "ok":
                return
            time.sleep(0.25)
        raise ControlPlaneError(
            f"kube-apiserver was not ready within {_READY_TIMEOUT_SECONDS:.0f}s:\n{_tail(log)}"
        )


def _etcd_args(binaries: Binaries, state: RunningState, peer_port: int, fast: bool) -> list[str]:
    client = f"http://127.0.0.1:{state.etcd_client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    args = [
        str(binaries.etcd),
        "--name=default",
        f"--data-dir={state.etcd_data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        "--log-level=warn",
    ]
    if fast:
        args.append("--unsafe-no-fsync")
    return args


def _apiserver_args(binaries: Binaries, state: RunningState, pki: Pki) -> list[str]:
    return [
        str(binaries.kube_apiserver),
        f"--etcd-servers=http://127.0.0.1:{state.etcd_client_port}",
        f"--secure-port={state.apiserver_port}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        "--service-cluster-ip-range=10.0.0.0/24",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        f"--cert-dir={pki.directory}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--service-account-issuer={state.server}/",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        "--profiling=false",
        "--v=1",
    ]


def _controller_manager_args(
    binaries: Binaries, state: RunningState, pki: Pki, kubeconfig: Path
) -> list[str]:
    return [
        str(binaries.kube_controller_manager),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        # No front proxy here: don't wait for a request-header CA that will never exist.
        "--authentication-skip-lookup=true",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca_cert}",
        "--use-service-account-credentials=false",
        "--controllers=*",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={state.controller_manager_port}",
        "--profiling=false",
        "--v=1",
    ]


def _free_ports(count: int) -> list[int]:
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_for_tcp(port: int, name: str, log: Path, pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_alive(pid):
            raise ControlPlaneError(f"{name} exited during startup:\n{_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise ControlPlaneError(
        f"{name} did not listen on port {port} within {timeout:.0f}s:\n{_tail(log)}"
    )


def _is_alive(pid: int) -> bool:
    try:
        waited, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        waited = 0  # Not our child (started by an earlier command): fall back to a signal probe.
    if waited == pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_process(pid: int, binary: str) -> bool:
    """Alive and still running ``binary`` (a recycled pid belongs to someone else)."""
    if not _is_alive(pid):
        return False
    try:
        executable = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return executable == binary


def _terminate(pid: int, grace: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _is_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while _is_alive(pid):
        time.sleep(0.05)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


@contextlib.contextmanager
def running(control_plane: ControlPlane) -> Iterator[RunningState]:
    """Start ``control_plane`` for the duration of a ``with`` block."""
    state = control_plane.start()
    try:
        yield state
    finally:
        control_plane.stop()
