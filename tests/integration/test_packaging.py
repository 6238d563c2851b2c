"""The chart and the kustomize base, applied to the real API server; the wheel, installed.

No kubelet runs here, so Pods are never started: kube-controller-manager still creates them,
which puts every Pod through Pod Security admission ("restricted").
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, VERSION
from durable_search.cluster.build import KUBERNETES_VERSION
from durable_search.packaging import BASE, CHART, base_files
from tests.support.demo import DemoSite
from tests.support.fixtures import Kubectl
from tests.support.kubeconfigs import kubeconfig_with_token
from tests.support.processes import OperatorProcess, WebProcess, free_port
from tests.support.searches import create_provider
from tests.support.waiting import eventually

REPO = Path(__file__).resolve().parents[2]
RELEASE = "durable-search"


@pytest.fixture(scope="module")
def helm() -> str:
    path = os.environ.get("DURABLE_SEARCH_HELM") or str(
        Path.home() / ".cache/durable-search/helm-v3.19.5/helm"
    )
    if not os.access(path, os.X_OK):
        pytest.fail(f"helm is not built at {path}: `make helm` (make test does it)")
    return path


def template(helm: str, namespace: str, *values: str) -> str:
    sets = [argument for value in values for argument in ("--set", value)]
    result = subprocess.run(
        [
            helm,
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            namespace,
            "--kube-version",
            KUBERNETES_VERSION,
            "--skip-tests",
            *sets,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_helm_lint_and_every_option_renders(helm: str) -> None:
    lint = subprocess.run(
        [helm, "lint", str(CHART), "--kube-version", KUBERNETES_VERSION],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    everything = list(
        yaml.safe_load_all(
            template(
                helm,
                "ns",
                "rbac.clusterWide=true",
                "demo.enabled=true",
                "networkPolicy.enabled=true",
                "operator.allowCidrs={10.0.0.0/8}",
                "web.auth=client",
            )
        )
    )
    kinds = sorted(d["kind"] for d in everything if d)
    # The operator's (cluster-wide) and the web's tokenreviews one (client mode).
    assert kinds.count("ClusterRole") == 2 and kinds.count("NetworkPolicy") == 2
    assert kinds.count("SearchProvider") == 4
    operator = next(
        d
        for d in everything
        if d and d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")
    )
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args and "--allow-cidr=10.0.0.0/8" in args
    assert "--allow-host=durable-search-web.ns.svc" in args
    assert operator["spec"]["strategy"] == {"type": "Recreate"}


def web_parts(rendered: str) -> tuple[list[str], list[dict[str, object]]]:
    """The web container's args, and every cluster-scoped RBAC object, of a rendering."""
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    web = next(
        d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-web")
    )
    cluster_rbac = [d for d in documents if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    return web["spec"]["template"]["spec"]["containers"][0]["args"], cluster_rbac


def test_the_web_limits_render_and_client_mode_alone_may_review_tokens(helm: str) -> None:
    args, cluster_rbac = web_parts(template(helm, "ns"))
    for expected in (
        "--default-ttl-seconds=86400",
        "--start-rate=5",
        "--start-burst=20",
        "--max-long-polls=10000",
        "--watcher-user=system:serviceaccount:ns:durable-search-operator",
    ):
        assert expected in args, args
    assert not any(a.startswith("--trusted-proxy") for a in args)
    assert cluster_rbac == []  # serviceaccount mode: nothing cluster-wide
    args, cluster_rbac = web_parts(
        template(
            helm,
            "ns",
            "web.auth=client",
            "web.trustedProxies={10.0.0.0/8,192.168.0.0/16}",
            "web.defaultTtlSeconds=0",
            "web.startRate=0.5",
            "web.startBurst=2",
            "web.maxLongPolls=50",
        )
    )
    for expected in (
        "--auth=client",
        "--trusted-proxy=10.0.0.0/8",
        "--trusted-proxy=192.168.0.0/16",
        "--default-ttl-seconds=0",
        "--start-rate=0.5",
        "--start-burst=2",
        "--max-long-polls=50",
    ):
        assert expected in args, args
    role = next(d for d in cluster_rbac if d["kind"] == "ClusterRole")
    assert role["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
    ]
    binding = next(d for d in cluster_rbac if d["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "durable-search-web", "namespace": "ns"}
    ]


def test_the_kustomize_base_is_the_chart_rendered_with_its_defaults(helm: str) -> None:
    expected = base_files(helm, KUBERNETES_VERSION)
    actual = {p.name: p.read_text() for p in BASE.glob("*.yaml")}
    assert actual == expected, "manifests/base is stale: run `make manifests`"


@pytest.fixture
def restricted_namespace(api_client: client.ApiClient, isolated_namespace: str) -> str:
    client.CoreV1Api(api_client).patch_namespace(
        isolated_namespace,
        {
            "metadata": {
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                }
            }
        },
    )
    return isolated_namespace


def test_the_chart_applies_and_its_pods_pass_restricted_admission(
    helm: str, kubectl: Kubectl, crds: None, restricted_namespace: str, api_client: client.ApiClient
) -> None:
    ns = restricted_namespace
    rendered = template(helm, ns, "demo.enabled=true", "networkPolicy.enabled=true")
    dry = kubectl.run(
        "apply", "--server-side", "--dry-run=server", "-n", ns, "-f", "-", input=rendered
    )
    assert dry.returncode == 0, dry.stderr
    kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=rendered)
    core = client.CoreV1Api(api_client)

    def pods_created() -> bool:
        pods = core.list_namespaced_pod(ns).items
        return len(pods) == 3  # operator, web, demo: created by kube-controller-manager

    eventually(pods_created, message="the ReplicaSets create their Pods")
    events = core.list_namespaced_event(ns).items
    assert not [e.message for e in events if e.reason == "FailedCreate"]
    # The control: a Pod that is not "restricted" is refused in this namespace.
    refused = kubectl.run("run", "loose", "--image=busybox", "-n", ns, "--restart=Never")
    assert refused.returncode != 0
    assert "violates PodSecurity" in refused.stderr


def test_the_kustomize_base_applies_with_kubectl(
    kubectl: Kubectl, crds: None, api_client: client.ApiClient
) -> None:
    kubectl("apply", "-k", str(BASE))
    try:
        namespace = client.CoreV1Api(api_client).read_namespace("durable-search")
        assert namespace.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
        eventually(
            lambda: (
                len(client.CoreV1Api(api_client).list_namespaced_pod("durable-search").items) == 2
            ),
            message="operator and web Pods admitted",
        )
    finally:
        kubectl("delete", "namespace", "durable-search", "--wait=false")


@pytest.fixture
def chart_installed(helm: str, kubectl: Kubectl, crds: None, isolated_namespace: str) -> str:
    kubectl("apply", "-n", isolated_namespace, "-f", "-", input=template(helm, isolated_namespace))
    return isolated_namespace


def account_kubeconfig(
    kubectl: Kubectl, kubeconfig: Path, namespace: str, account: str, tmp_path: Path
) -> Path:
    token = kubectl("create", "token", account, "-n", namespace, "--duration=1h").strip()
    return kubeconfig_with_token(kubeconfig, token, tmp_path / f"{account}.kubeconfig")


def test_the_operator_and_web_work_with_only_their_charts_service_accounts(
    chart_installed: str,
    kubectl: Kubectl,
    kubeconfig: Path,
    tmp_path: Path,
    api_client: client.ApiClient,
    demo_site: DemoSite,
) -> None:
    ns = chart_installed
    operator_config = account_kubeconfig(kubectl, kubeconfig, ns, f"{RELEASE}-operator", tmp_path)
    web_config = account_kubeconfig(kubectl, kubeconfig, ns, f"{RELEASE}-web", tmp_path)
    operator = OperatorProcess(
        operator_config,
        tmp_path / "operator.log",
        [f"--namespace={ns}", "--allow-cidr=127.0.0.0/8"],
    ).start()
    web = WebProcess(web_config, tmp_path / "web.log", ns).start()
    try:
        custom = client.CustomObjectsApi(api_client)
        core = client.CoreV1Api(api_client)
        core.create_namespaced_secret(
            ns,
            client.V1Secret(metadata=client.V1ObjectMeta(name="key"), string_data={"key": "k-123"}),
        )
        core.create_namespaced_service_account(
            ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="caller"))
        )
        secret_header = {
            "name": "X-Key",
            "valueFrom": {"secretKeyRef": {"name": "key", "key": "key"}},
        }
        create_provider(api_client, ns, "site", demo_site.url("rbac-site"), headers=[secret_header])
        custom.create_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            HTTPTASK_PLURAL,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "HttpTask",
                "metadata": {"name": "identity"},
                "spec": {
                    "request": {
                        "url": f"{demo_site.base}/search?q=i&key=rbac-token",
                        "auth": {
                            "serviceAccountToken": {
                                "serviceAccountName": "caller",
                                "audience": "https://x",
                            }
                        },
                    }
                },
            },
        )

        request = urllib.request.Request(
            f"{web.base}/api/searches",
            data=json.dumps({"query": "rbac"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            search_id = json.load(response)["id"]

        def finished(plural: str, name: str, phases: tuple[str, ...]) -> bool:
            body = custom.get_namespaced_custom_object(GROUP, VERSION, ns, plural, name)
            return (body.get("status") or {}).get("phase") in phases

        eventually(
            lambda: finished("searches", search_id, ("Completed", "Failed")),
            message="the Search completes with the operator's own identity",
        )
        search = custom.get_namespaced_custom_object(GROUP, VERSION, ns, "searches", search_id)
        assert search["status"]["phase"] == "Completed", search["status"]
        assert search["status"]["results"][0]["outcome"] == "Succeeded"
        eventually(
            lambda: finished(HTTPTASK_PLURAL, f"{search_id}--watcher", ("Succeeded",)),
            message="the watcher reaches the web service",
        )
        eventually(lambda: finished(HTTPTASK_PLURAL, "identity", ("Succeeded", "Failed")))
        identity = custom.get_namespaced_custom_object(
            GROUP, VERSION, ns, HTTPTASK_PLURAL, "identity"
        )
        assert identity["status"]["outcome"] == "Succeeded", identity["status"]
        seen = demo_site.stats()["headers"]
        assert seen["rbac-site"][0]["x-key"] == "k-123"
        assert seen["rbac-token"][0]["authorization"].startswith("Bearer ")
        assert "Forbidden" not in operator.log.read_text()
    finally:
        web.stop()
        operator.stop()


def test_the_service_accounts_get_no_more_than_they_need(
    chart_installed: str, kubectl: Kubectl
) -> None:
    ns = chart_installed
    operator = f"--as=system:serviceaccount:{ns}:{RELEASE}-operator"
    web = f"--as=system:serviceaccount:{ns}:{RELEASE}-web"

    def can(*args: str) -> bool:
        return kubectl.run("auth", "can-i", *args).stdout.strip() == "yes"

    assert can("get", "secrets", "-n", ns, operator)  # header values from Secrets
    assert not can("get", "secrets", "--all-namespaces", operator)
    assert not can("list", "secrets", "-n", ns, operator)
    assert not can("create", "clusterrolebindings", operator)
    assert not can("create", "rolebindings", "-n", ns, operator)
    assert not can("get", "searches.durablesearch.dev", "-n", "default", operator)
    assert can("create", "searches.durablesearch.dev", "-n", ns, web)
    assert not can("get", "secrets", "-n", ns, web)
    assert not can("patch", "httptasks.durablesearch.dev", "-n", ns, web)
    assert not can("create", "clusterrolebindings", web)


def _non_root_user() -> tuple[str, int, int]:
    if os.getuid() != 0:
        entry = pwd.getpwuid(os.getuid())
        return entry.pw_name, entry.pw_uid, entry.pw_gid
    name = "durable-wheel-test"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--create-home", "--shell", "/bin/sh", name], check=True
        )
        entry = pwd.getpwnam(name)
    return name, entry.pw_uid, entry.pw_gid


@pytest.fixture
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(REPO)],
        check=True,
    )
    return next(out.glob("durable_search-*.whl"))


def test_the_wheel_installs_into_a_fresh_venv_and_both_entry_points_start_as_non_root(
    wheel: Path,
    kubeconfig: Path,
    crds: None,
    namespace: str,
) -> None:
    _user, uid, gid = _non_root_user()
    home = Path(f"/tmp/durable-wheel-{uid}-{int(time.time())}")
    home.mkdir(mode=0o755)
    try:
        shutil.copy(wheel, home / wheel.name)
        shutil.copy(kubeconfig, home / "kubeconfig")
        shutil.copy(REPO / "requirements/constraints.txt", home / "constraints.txt")
        for path in (home, *home.iterdir()):
            os.chown(path, uid, gid)

        # Drop to the non-root user the way a container's USER line does (uid, gid, no groups).
        drop = {"user": uid, "group": gid, "extra_groups": []} if os.getuid() == 0 else {}
        env = {
            "HOME": str(home),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }

        def as_user(*command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                list(command),
                env=env,
                capture_output=True,
                text=True,
                cwd=home,
                check=False,
                timeout=timeout,
                **drop,
            )  # type: ignore[arg-type]

        # As root, the suite's own interpreter may live where others cannot read (pyenv under
        # /root): use the system's Python 3.11, as the image uses its base image's.
        python = "/usr/bin/python3.11" if os.getuid() == 0 else sys.executable
        made = as_user(python, "-m", "venv", str(home / "venv"))
        assert made.returncode == 0, made.stderr
        installed = as_user(
            str(home / "venv/bin/pip"),
            "install",
            "--quiet",
            "-c",
            str(home / "constraints.txt"),
            str(home / wheel.name),
            timeout=600,
        )
        assert installed.returncode == 0, installed.stderr
        cli = str(home / "venv/bin/durable-search")
        assert "operator" in as_user(cli, "--help").stdout

        health, port = free_port(), free_port()
        common = {
            "cwd": home,
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.DEVNULL,
            "env": env,
            **drop,
        }
        operator = subprocess.Popen(
            [
                cli,
                "operator",
                f"--kubeconfig={home / 'kubeconfig'}",
                f"--namespace={namespace}",
                f"--health-port={health}",
            ],
            **common,
        )  # type: ignore[call-overload]
        web = subprocess.Popen(
            [
                cli,
                "web",
                f"--kubeconfig={home / 'kubeconfig'}",
                f"--namespace={namespace}",
                f"--port={port}",
            ],
            **common,
        )  # type: ignore[call-overload]
        try:

            def answers(url: str) -> bool:
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        return bool(response.status == 200)
                except OSError:
                    return False

            eventually(lambda: answers(f"http://127.0.0.1:{health}/readyz"), message="operator")
            eventually(lambda: answers(f"http://127.0.0.1:{port}/readyz"), message="web")
            # The page and its assets come from inside the installed wheel.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/app.js", timeout=5) as r:
                assert b"LONG_POLL_SECONDS" in r.read()
            for process in (operator, web):
                owner = Path(f"/proc/{process.pid}").stat().st_uid
                assert owner == uid != 0 or os.getuid() != 0
        finally:
            for process in (operator, web):
                process.terminate()
                process.wait(20)
    finally:
        shutil.rmtree(home, ignore_errors=True)
