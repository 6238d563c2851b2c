"""Fixtures for tests against the real local control plane (integration and browser suites).

One control plane per test session (etcd on tmpfs, ``--unsafe-no-fsync``), one namespace per
test. If the control plane cannot start, every integration test errors: nothing is skipped.
The session installs the CRDs and the admission policies (``crds``, ``admission``) as ``make up``
does, with the parameter in namespace ``durable-search-tests`` (not ``durable-search``, which
the kustomize-base test creates and deletes).
Set ``DURABLE_SEARCH_TEST_KUBECONFIG`` to run against an already running control plane instead
(for quick iteration with ``make cluster-up``).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from durable_search.cluster import admission as local_admission
from durable_search.cluster.controlplane import ControlPlane
from tests.support.demo import DemoSite
from tests.support.processes import OperatorProcess, WebProcess
from tests.support.searches import Searches

REPO = Path(__file__).resolve().parents[2]
PROXY_ADDRESS = "127.0.0.2"  # a loopback source address for clients acting as a proxy


@pytest.fixture(scope="session")
def kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    existing = os.environ.get("DURABLE_SEARCH_TEST_KUBECONFIG")
    if existing:
        yield Path(existing)
        return
    state_dir = tmp_path_factory.mktemp("control-plane")
    plane = ControlPlane(state_dir, state_dir / "kubeconfig", fast_storage=True)
    plane.start()
    try:
        yield plane.kubeconfig
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api
    finally:
        api.close()


def _namespace(api_client: client.ApiClient, prefix: str) -> Iterator[str]:
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        core.delete_namespace(name)


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace the session's operator watches."""
    yield from _namespace(api_client, "t")


@pytest.fixture
def isolated_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace no shared operator watches: the test runs its own."""
    yield from _namespace(api_client, "iso")


class Kubectl:
    """Runs the installed ``kubectl`` against the test control plane."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def __call__(self, *args: str, input: str | None = None) -> str:
        result = self.run(*args, input=input)
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path) -> Kubectl:
    return Kubectl(kubeconfig)


@pytest.fixture(scope="session")
def crd_definitions(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "-f", str(REPO / "crds"), "--timeout=60s")


ADMISSION_NAMESPACE = "durable-search-tests"


class Admission:
    """The admission policies as the session installs them: the admin is the operator user,
    the local issuer the API audience. ``install`` again restores them after a test that
    replaced the cluster-scoped policies or bindings (the chart's, the kustomize base's)."""

    namespace = ADMISSION_NAMESPACE
    operator_user = local_admission.ADMIN_USER

    def __init__(self, kubectl: Kubectl, server: str) -> None:
        self.kubectl = kubectl
        self.server = server
        self.api_audience = local_admission.local_issuer(server)

    def install(self) -> None:
        documents = local_admission.local_admission(self.server, self.namespace)
        self.kubectl("apply", "-f", "-", input=local_admission.render(documents))

        def dry_run_create(manifest: str) -> str:
            result = self.kubectl.run("create", "--dry-run=server", "-f", "-", input=manifest)
            return result.stdout + result.stderr

        local_admission.wait_until_enforced(dry_run_create, self.namespace)


@pytest.fixture(scope="session")
def admission(crd_definitions: None, kubectl: Kubectl, kubeconfig: Path) -> Admission:
    """The admission policies, bindings and parameter, installed and enforced."""
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    installed = Admission(kubectl, server)
    installed.install()
    return installed


@pytest.fixture(scope="session")
def crds(admission: Admission) -> None:
    """The CRDs and the admission policies that guard them: what every cluster test needs."""


@pytest.fixture(scope="session")
def demo_site() -> Iterator[DemoSite]:
    site = DemoSite().start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="session")
def operator(
    crds: None, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for the session, watching the ``t-*`` test namespaces, loopback opened.

    Tests that need an operator of their own (killed, differently configured) use an
    ``isolated_namespace``, which this one does not watch.
    """
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = OperatorProcess(kubeconfig, log, ["--namespace=t-*", "--allow-cidr=127.0.0.0/8"])
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def searches(
    api_client: client.ApiClient, namespace: str, operator: OperatorProcess
) -> Iterator[Searches]:
    yield Searches(api_client, namespace)
    assert operator.alive(), f"the operator died during the test:\n{operator.tail()}"


@pytest.fixture
def start_operator(
    crds: None, kubeconfig: Path, tmp_path: Path
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start operators of the test's own (for isolated namespaces); all stopped at the end."""
    started: list[OperatorProcess] = []

    def start(namespace: str, *args: str) -> OperatorProcess:
        log = tmp_path / f"operator-{len(started)}.log"
        process = OperatorProcess(kubeconfig, log, [f"--namespace={namespace}", *args])
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module")
def web_namespace(api_client: client.ApiClient) -> Iterator[str]:
    """One namespace (watched by the session operator) shared by a module's web tests."""
    yield from _namespace(api_client, "t-web")


@pytest.fixture(scope="module")
def web(
    crds: None,
    kubeconfig: Path,
    web_namespace: str,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WebProcess]:
    log = tmp_path_factory.mktemp("web") / "web.log"
    # Tests that play a reverse proxy connect from PROXY_ADDRESS: only it is trusted.
    args = [f"--trusted-proxy={PROXY_ADDRESS}/32"]
    process = WebProcess(kubeconfig, log, web_namespace, args).start()
    try:
        yield process
    finally:
        process.stop()
