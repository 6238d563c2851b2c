"""Where the cluster is and who we are to it: kubeconfig files and the in-cluster account.

Our own reader, not ``kubernetes_asyncio.config``: that package pulls in the whole generated
client (about 60 MiB of models in every process and 0.7 s at every start) to hand back a host,
certificates and an Authorization header. What is read here:

- clusters: ``server``, ``certificate-authority`` (a path, relative to its kubeconfig file) or
  ``certificate-authority-data``, ``insecure-skip-tls-verify``, ``tls-server-name``;
- users: ``token``, ``tokenFile`` (read again every minute), ``client-certificate``/``-data``
  and ``client-key``/``-data``, ``username``/``password``, and ``exec`` credential plugins
  (``client.authentication.k8s.io`` v1 and v1beta1: a token, cached until its expiry, or a
  client certificate); ``auth-provider`` is refused with a clear error (use an exec plugin);
  ``proxy-url`` is not followed (a warning says so);
- contexts: ``cluster``, ``user``, ``namespace``; ``current-context``;
- ``KUBECONFIG`` lists files separated by ``:``, merged as kubectl does (the first file naming
  an entry or the current context wins);
- in a Pod: the ServiceAccount's token (re-read every minute: bound tokens rotate), its CA and
  ``KUBERNETES_SERVICE_HOST``/``_PORT``.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import datetime as dt
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from durable_search.api.timestamps import parse_time
from durable_search.errors import KubeconfigError, NotInClusterError

logger = logging.getLogger("durable_search.kube")
SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_FILE_SECONDS = 60.0
EXEC_TIMEOUT_SECONDS = 60.0


# -- credentials ---------------------------------------------------------------------------


class Credential:
    """What goes into the Authorization header (None: none, a client certificate does)."""

    async def authorization(self) -> str | None:
        return None


@dataclass
class StaticCredential(Credential):
    header: str

    async def authorization(self) -> str | None:
        return self.header


@dataclass
class TokenFileCredential(Credential):
    """A token read from a file, and read again after ``seconds`` (rotated tokens)."""

    path: Path
    seconds: float = TOKEN_FILE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _token: str = ""
    _read_at: float = -1e18

    async def authorization(self) -> str | None:
        if self.clock() - self._read_at >= self.seconds:
            self._token = self.path.read_text().strip()
            self._read_at = self.clock()
        return f"Bearer {self._token}" if self._token else None


@dataclass
class ExecCredential(Credential):
    """A credential plugin's token, run again once its ``expirationTimestamp`` has passed."""

    spec: Mapping[str, Any]
    base: Path
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    token: str | None = None
    expires: dt.datetime | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def take(self, status: Mapping[str, Any]) -> None:
        """Keep a plugin's answer: its token, until its expiry (if it names one)."""
        self.token = status.get("token")
        expiry = status.get("expirationTimestamp")
        self.expires = parse_time(expiry) if expiry else None

    async def authorization(self) -> str | None:
        async with self._lock:
            if self.token is None or (self.expires is not None and self.clock() >= self.expires):
                self.take(await asyncio.to_thread(run_exec_plugin, self.spec, self.base))
        return f"Bearer {self.token}" if self.token else None


def run_exec_plugin(spec: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """Run an exec credential plugin; its ``status`` (token, or client certificate and key)."""
    command = str(spec.get("command") or "")
    if not command:
        raise KubeconfigError("exec credential plugin: no command")
    if "/" in command and not Path(command).is_absolute():
        command = str(base / command)  # a path relative to the kubeconfig's directory
    api_version = str(spec.get("apiVersion") or "client.authentication.k8s.io/v1")
    env = {**os.environ}
    for item in spec.get("env") or ():
        env[str(item["name"])] = str(item["value"])
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {
            "apiVersion": api_version,
            "kind": "ExecCredential",
            "spec": {"interactive": False},
        }
    )
    try:
        # The user's own kubeconfig names the command, as kubectl runs it.
        done = subprocess.run(
            [command, *(str(a) for a in spec.get("args") or ())],
            env=env,
            capture_output=True,
            timeout=EXEC_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise KubeconfigError(f"exec credential plugin {command}: {error}") from error
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip()[-500:]
        raise KubeconfigError(f"exec credential plugin {command} exited {done.returncode}: {tail}")
    try:
        status = json.loads(done.stdout)["status"]
    except (ValueError, KeyError, TypeError) as error:
        raise KubeconfigError(f"exec credential plugin {command}: no ExecCredential") from error
    if not isinstance(status, dict):
        raise KubeconfigError(f"exec credential plugin {command}: no ExecCredential status")
    return status


# -- the connection ------------------------------------------------------------------------


@dataclass
class Connection:
    """An API server and how to reach it as one identity."""

    host: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    server_name: str | None = None
    namespace: str = "default"
    credential: Credential = field(default_factory=Credential)

    async def authorization(self) -> str | None:
        return await self.credential.authorization()


_PRIVATE_DIR: Path | None = None


def _private_file(data: bytes, suffix: str) -> str:
    """Inline certificate data as a file only this process reads (removed at exit)."""
    global _PRIVATE_DIR
    if _PRIVATE_DIR is None:
        _PRIVATE_DIR = Path(tempfile.mkdtemp(prefix="durable-search-kube-"))
        atexit.register(shutil.rmtree, _PRIVATE_DIR, True)
    handle, name = tempfile.mkstemp(suffix=suffix, dir=_PRIVATE_DIR)
    with os.fdopen(handle, "wb") as file:
        file.write(data)
    return name


def _file_or_data(entry: Mapping[str, Any], key: str, base: Path, suffix: str) -> str | None:
    data = entry.get(f"{key}-data")
    if data:
        try:
            return _private_file(base64.b64decode(data, validate=True), suffix)
        except ValueError as error:
            raise KubeconfigError(f"{key}-data is not base64") from error
    path = entry.get(key)
    if path:
        resolved = Path(str(path)).expanduser()
        return str(resolved if resolved.is_absolute() else base / resolved)
    return None


# -- kubeconfig files ----------------------------------------------------------------------


@dataclass
class Kubeconfig:
    """One or more kubeconfig files, merged; the directory each entry came from."""

    clusters: dict[str, tuple[Mapping[str, Any], Path]] = field(default_factory=dict)
    users: dict[str, tuple[Mapping[str, Any], Path]] = field(default_factory=dict)
    contexts: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    current_context: str | None = None

    @classmethod
    def read(cls, paths: Sequence[Path]) -> Kubeconfig:
        merged = cls()
        for path in paths:
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except FileNotFoundError:
                continue
            except (OSError, yaml.YAMLError) as error:
                raise KubeconfigError(f"cannot read kubeconfig {path}: {error}") from error
            if not isinstance(loaded, dict):
                raise KubeconfigError(f"kubeconfig {path} is not a mapping")
            merged._merge(loaded, path.resolve().parent)
        return merged

    def _merge(self, loaded: Mapping[str, Any], base: Path) -> None:
        for item in loaded.get("clusters") or ():
            self.clusters.setdefault(str(item.get("name")), (item.get("cluster") or {}, base))
        for item in loaded.get("users") or ():
            self.users.setdefault(str(item.get("name")), (item.get("user") or {}, base))
        for item in loaded.get("contexts") or ():
            self.contexts.setdefault(str(item.get("name")), item.get("context") or {})
        if not self.current_context and loaded.get("current-context"):
            self.current_context = str(loaded["current-context"])

    def context(self) -> Mapping[str, Any]:
        if not self.current_context:
            raise KubeconfigError("the kubeconfig has no current-context")
        try:
            return self.contexts[self.current_context]
        except KeyError:
            raise KubeconfigError(f"context {self.current_context!r} is not defined") from None

    def namespace(self) -> str:
        return str(self.context().get("namespace") or "default")

    def connection(self) -> Connection:
        context = self.context()
        cluster_name, user_name = str(context.get("cluster")), str(context.get("user") or "")
        if cluster_name not in self.clusters:
            raise KubeconfigError(f"cluster {cluster_name!r} is not defined")
        cluster, cluster_base = self.clusters[cluster_name]
        user, user_base = self.users.get(user_name, ({}, cluster_base))
        server = str(cluster.get("server") or "")
        if cluster.get("proxy-url"):
            logger.warning(
                "cluster %r: proxy-url is not followed; connecting to %s directly",
                cluster_name,
                server,
            )
        if not server:
            raise KubeconfigError(f"cluster {cluster_name!r} has no server")
        connection = Connection(
            host=server.rstrip("/"),
            ca_file=_file_or_data(cluster, "certificate-authority", cluster_base, ".crt"),
            verify=not cluster.get("insecure-skip-tls-verify"),
            server_name=cluster.get("tls-server-name"),
            namespace=str(context.get("namespace") or "default"),
        )
        _authenticate(connection, user, user_base)
        return connection


def _authenticate(connection: Connection, user: Mapping[str, Any], base: Path) -> None:
    if user.get("auth-provider"):
        name = (user.get("auth-provider") or {}).get("name")
        raise KubeconfigError(
            f"auth-provider {name!r} is not supported: use its exec credential plugin "
            "(kubelogin, gke-gcloud-auth-plugin, aws eks get-token)"
        )
    connection.cert_file = _file_or_data(user, "client-certificate", base, ".crt")
    connection.key_file = _file_or_data(user, "client-key", base, ".key")
    if user.get("token"):
        connection.credential = StaticCredential(f"Bearer {user['token']}")
    elif user.get("tokenFile"):
        connection.credential = TokenFileCredential(base / Path(user["tokenFile"]).expanduser())
    elif user.get("username") and user.get("password"):
        pair = f"{user['username']}:{user['password']}".encode()
        connection.credential = StaticCredential(f"Basic {base64.b64encode(pair).decode()}")
    elif user.get("exec"):
        spec = user["exec"]
        status = run_exec_plugin(spec, base)  # once now: it may hand out a certificate
        if status.get("clientCertificateData") and status.get("clientKeyData"):
            connection.cert_file = _private_file(status["clientCertificateData"].encode(), ".crt")
            connection.key_file = _private_file(status["clientKeyData"].encode(), ".key")
        else:
            credential = ExecCredential(spec, base)
            credential.take(status)
            connection.credential = credential


def kubeconfig_paths(kubeconfig: str | None = None) -> list[Path]:
    """``kubeconfig`` itself, else every file of ``KUBECONFIG``, else ``~/.kube/config``."""
    if kubeconfig:
        return [Path(kubeconfig)]
    listed = [Path(p) for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed or [Path.home() / ".kube" / "config"]


def in_cluster(account: Path = SERVICE_ACCOUNT) -> Connection:
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT")
    token = account / "token"
    if not host or not port or not token.exists():
        raise NotInClusterError(
            "not in a cluster: no ServiceAccount token or KUBERNETES_SERVICE_HOST"
        )
    if ":" in host:
        host = f"[{host}]"  # IPv6
    namespace_file = account / "namespace"
    return Connection(
        host=f"https://{host}:{port}",
        ca_file=str(account / "ca.crt"),
        namespace=namespace_file.read_text().strip() if namespace_file.exists() else "default",
        credential=TokenFileCredential(token),
    )


def load_connection(kubeconfig: str | None) -> Connection:
    """``--kubeconfig``, else the in-cluster account, else ``KUBECONFIG``/``~/.kube/config``."""
    if not kubeconfig:
        try:
            return in_cluster()
        except NotInClusterError:
            pass
    paths = kubeconfig_paths(kubeconfig)
    if kubeconfig and not paths[0].exists():
        raise KubeconfigError(f"kubeconfig {kubeconfig} does not exist")
    merged = Kubeconfig.read(paths)
    if not merged.contexts:
        raise KubeconfigError(
            "no cluster configured: not in a cluster, and no kubeconfig at "
            + ", ".join(str(p) for p in paths)
        )
    return merged.connection()
