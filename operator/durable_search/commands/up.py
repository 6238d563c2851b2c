"""``durable-search up`` (``make up``): everything locally, in the foreground; Ctrl-C stops it.

Starts (or reuses) the local control plane, applies the CRDs, the admission policies (their
parameter in namespace ``durable-search``: the operator is the admin user, the API audience the
local issuer) and the demo SearchProviders, then runs the demo search site, the operator and the
web service as child processes with their logs in ``.local/logs/``. ``--cluster current`` uses
the current kube context instead of the local control plane (an explicit opt-in: nothing is
applied to a real cluster otherwise); there the operator is the context's user
(``kubectl auth whoami``) and the API audiences are the cluster's issuer and the usual in-cluster
ones.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from durable_search.api.admission import DEFAULT_API_AUDIENCES, LOCAL_PARAM_NAMESPACE
from durable_search.commands.cluster import DEFAULT_KUBECONFIG, DEFAULT_STATE_DIR

if TYPE_CHECKING:
    from durable_search.cluster.controlplane import RunningState

LOGS = Path(".local/logs")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("up", help="run the whole system locally (make up)")
    parser.add_argument(
        "--cluster",
        choices=["local", "current"],
        default="local",
        help="local: the loopback control plane; current: your kube context",
    )
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--demo-port", type=int, default=8090)
    parser.add_argument("--health-port", type=int, default=8091)
    parser.add_argument("--port", type=int, default=8080, help="the web service's port")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Development tooling: imported only when `up` runs (cryptography is a dev dependency).
    from durable_search.cluster.controlplane import ControlPlane
    from durable_search.errors import BuildError, ControlPlaneError

    LOGS.mkdir(parents=True, exist_ok=True)
    plane: ControlPlane | None = None
    started_plane = False
    if args.cluster == "local":
        plane = ControlPlane(DEFAULT_STATE_DIR.resolve(), DEFAULT_KUBECONFIG.resolve())
        started_plane = not plane.is_running()
        _step("starting the local control plane" if started_plane else "reusing the control plane")
        try:
            plane.start()
        except (BuildError, ControlPlaneError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        kubeconfig = str(plane.kubeconfig)
    else:
        kubeconfig = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    children: list[subprocess.Popen[bytes]] = []
    try:
        _step("applying the CRDs and the demo SearchProviders")
        _kubectl(env, "apply", "-f", "crds/")
        _kubectl(env, "wait", "--for=condition=Established", "-f", "crds/", "--timeout=60s")
        _step(f"applying the admission policies (parameter in namespace {LOCAL_PARAM_NAMESPACE})")
        _apply_admission(env, None if plane is None else plane.state())
        _kubectl(env, "apply", "-n", args.namespace, "-f", "manifests/examples/providers.yaml")
        me = [sys.executable, "-m", "durable_search.cli"]
        _step(f"starting the demo search site on 127.0.0.1:{args.demo_port}")
        children.append(_spawn("demo-site", [*me, "demo-site", "--port", str(args.demo_port)], env))
        _wait_http(f"http://127.0.0.1:{args.demo_port}/healthz", children[-1], "demo-site")
        _step("starting the operator")
        children.append(
            _spawn(
                "operator",
                [
                    *me,
                    "operator",
                    "--namespace",
                    args.namespace,
                    "--allow-cidr",
                    "127.0.0.0/8",
                    "--health-port",
                    str(args.health_port),
                ],
                env,
            )
        )
        _wait_http(f"http://127.0.0.1:{args.health_port}/readyz", children[-1], "operator")
        _step(f"starting the web service on 127.0.0.1:{args.port}")
        web = [*me, "web", "--namespace", args.namespace, "--port", str(args.port)]
        children.append(_spawn("web", web, env))
        _wait_http(f"http://127.0.0.1:{args.port}/readyz", children[-1], "web")
        print()
        print(f"Durable Search is up: http://127.0.0.1:{args.port}/")
        print(f"demo search site: http://127.0.0.1:{args.demo_port}/search?q=hello")
        print(f"export KUBECONFIG={kubeconfig}")
        print("kubectl apply -f manifests/examples/ && kubectl get searches -w")
        print('.venv/bin/durable-search start "café & crème" --wait')
        print(f"logs: {LOGS}/  (Ctrl-C stops everything this started)", flush=True)
        _supervise(children)
    except KeyboardInterrupt:
        pass
    except (subprocess.CalledProcessError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        _step("stopping")
        for child in reversed(children):
            _stop(child)
        if plane is not None and started_plane:
            plane.stop()
    return 0


def _step(message: str) -> None:
    print(f"==> {message}", flush=True)


def _kubectl(env: dict[str, str], *args: str, input: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", *args], env=env, input=input, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{result.stderr.strip()}")
    return result.stdout


def _apply_admission(env: dict[str, str], local: RunningState | None) -> None:
    from durable_search.cluster import admission

    if local is not None:
        documents = admission.local_admission(local.server, LOCAL_PARAM_NAMESPACE)
    else:
        documents = admission.admission_documents(
            LOCAL_PARAM_NAMESPACE, [_current_user(env)], _current_audiences(env)
        )
    admission.apply_and_wait(["kubectl"], documents, LOCAL_PARAM_NAMESPACE, env)


def _current_user(env: dict[str, str]) -> str:
    review = json.loads(_kubectl(env, "auth", "whoami", "-o", "json"))
    user: str = review["status"]["userInfo"]["username"]
    return user


def _current_audiences(env: dict[str, str]) -> list[str]:
    audiences = list(DEFAULT_API_AUDIENCES)
    try:
        discovery = json.loads(_kubectl(env, "get", "--raw", "/.well-known/openid-configuration"))
    except (RuntimeError, ValueError):
        return audiences  # no discovery: the usual in-cluster audiences only
    issuer = discovery.get("issuer")
    if isinstance(issuer, str) and issuer:
        audiences.append(issuer)
    return audiences


def _spawn(name: str, command: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    log = (LOGS / f"{name}.log").open("ab")
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_http(url: str, process: subprocess.Popen[bytes], name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited (code {process.returncode}); see {LOGS}/{name}.log")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} was not ready within {timeout:.0f}s; see {LOGS}/{name}.log")


def _supervise(children: Sequence[subprocess.Popen[bytes]]) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    while True:
        for child in children:
            if child.poll() is not None:
                raise RuntimeError(f"a process exited unexpectedly: {child.args!r}")
        time.sleep(1)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
