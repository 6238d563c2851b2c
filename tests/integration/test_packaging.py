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
from typing import Any

import pytest
import yaml
from kubernetes import client

from durable_search.api.admission import PARAM_CONFIGMAP, POLICY_HTTPTASKS, POLICY_NAMES
from durable_search.api.constants import GROUP, HTTPTASK_PLURAL, VERSION
from durable_search.api.policies import BINDINGS_FILE, POLICIES_FILE
from durable_search.cluster.build import KUBERNETES_VERSION
from durable_search.packaging import BASE, CHART, base_files
from tests.support.demo import DemoSite
from tests.support.fixtures import Admission, Kubectl
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
                "networkPolicy.egress.enabled=true",
                "quota.enabled=true",
                "operator.allowCidrs={10.0.0.0/8}",
                "web.auth=client",
            )
        )
    )
    kinds = sorted(d["kind"] for d in everything if d)
    # The operator's (cluster-wide), the one reading the admission policies, and the web's
    # tokenreviews one (client mode).
    assert kinds.count("ClusterRole") == 3 and kinds.count("NetworkPolicy") == 3
    # Three credential policies and two that keep specs immutable.
    assert kinds.count("ValidatingAdmissionPolicy") == 5 and kinds.count("ResourceQuota") == 1
    assert kinds.count("SearchProvider") == 4
    operator = next(
        d
        for d in everything
        if d and d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")
    )
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" in args and "--allow-cidr=10.0.0.0/8" in args
    assert "--watcher-base-url=http://durable-search-web.ns.svc:80" in args
    assert not any(a.startswith("--allow-host=durable-search-web") for a in args)
    assert operator["spec"]["strategy"] == {"type": "Recreate"}


def test_more_than_one_operator_replica_renders_a_ring(helm: str) -> None:
    def rendered(*values: str) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(template(helm, "ns", *values)) if d]

    standalone = rendered()
    assert not [d for d in standalone if d["kind"] == "PodDisruptionBudget"]
    # Standalone too keeps a Lease (a ring started beside it refuses), named by its Pod.
    assert [d for d in standalone if d["metadata"]["name"].endswith("-operator-leases")]
    ring = rendered("operator.replicas=3", "operator.drainSeconds=20")
    operator = next(
        d for d in ring if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")
    )
    assert operator["spec"]["replicas"] == 3
    assert operator["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = operator["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 30
    container = pod["containers"][0]
    assert "--ring=durable-search-operator" in container["args"]
    assert "--drain-seconds=20" in container["args"]
    assert {e["name"] for e in container["env"]} == {"POD_NAME", "POD_NAMESPACE"}
    budget = next(d for d in ring if d["kind"] == "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    role = next(
        d for d in ring if d["kind"] == "Role" and d["metadata"]["name"].endswith("-leases")
    )
    assert role["rules"] == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "verbs": ["get", "list", "create", "update", "delete"],
        }
    ]


def web_parts(rendered: str) -> tuple[list[str], list[dict[str, object]]]:
    """The web container's args, and every cluster-scoped RBAC object, of a rendering."""
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    web = next(
        d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-web")
    )
    cluster_rbac = [
        d
        for d in documents
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding") and "-web" in d["metadata"]["name"]
    ]
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
    assert cluster_rbac == []  # serviceaccount mode: nothing cluster-wide for the web
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
    # The session's cluster-scoped admission policies stay as they are (see chart_installed).
    rendered = template(
        helm, ns, "demo.enabled=true", "networkPolicy.enabled=true", "admission.enabled=false"
    )
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
    kubectl: Kubectl, crds: None, api_client: client.ApiClient, admission: Admission
) -> None:
    # The base's admission bindings replace the session's and name namespace durable-search,
    # deleted below: the session's are restored before any other test runs.
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
        registration = client.AdmissionregistrationV1Api(api_client)
        binding = registration.read_validating_admission_policy_binding(POLICY_HTTPTASKS)
        assert binding.spec.param_ref.namespace == "durable-search"
    finally:
        kubectl("delete", "namespace", "durable-search", "--wait=false")
        admission.install()


@pytest.fixture
def chart_installed(helm: str, kubectl: Kubectl, crds: None, isolated_namespace: str) -> str:
    """The chart in a namespace of its own, without its admission policies: they are
    cluster-scoped with fixed names, and the session's (test_admission) stay in force."""
    rendered = template(helm, isolated_namespace, "admission.enabled=false")
    kubectl("apply", "-n", isolated_namespace, "-f", "-", input=rendered)
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
    # The admission policies, their bindings and their parameter: read by name, nothing more.
    for resource in ("validatingadmissionpolicies", "validatingadmissionpolicybindings"):
        for name in POLICY_NAMES:
            assert can("get", f"{resource}/{name}", operator)
        assert not can("get", f"{resource}/someone-elses", operator)
        assert not can("list", resource, operator)
        assert not can("update", f"{resource}/{POLICY_HTTPTASKS}", operator)
    assert can("get", f"configmaps/{PARAM_CONFIGMAP}", "-n", ns, operator)
    # ConfigMaps of the watched namespace by name, as Secrets (bodyFrom, tls.caBundleFrom; the
    # admission policies check the author may get each one), never listed, never elsewhere.
    assert can("get", "configmaps/other", "-n", ns, operator)
    assert not can("get", "configmaps", "--all-namespaces", operator)
    assert not can("list", "configmaps", "-n", ns, operator)
    assert not can("update", f"configmaps/{PARAM_CONFIGMAP}", "-n", ns, operator)
    assert not can("get", f"validatingadmissionpolicies/{POLICY_HTTPTASKS}", web)


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


def _documents(rendered: str, *kinds: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(rendered) if d and d["kind"] in kinds]


def test_the_charts_admission_objects_are_the_static_policies_and_the_api_server_accepts_them(
    helm: str, kubectl: Kubectl, crds: None, isolated_namespace: str
) -> None:
    static = REPO / "manifests" / "policies"
    defaults = template(helm, "durable-search")
    policies = _documents(defaults, "ValidatingAdmissionPolicy")
    assert policies == list(yaml.safe_load_all((static / POLICIES_FILE).read_text()))
    bindings = _documents(defaults, "ValidatingAdmissionPolicyBinding")
    expected = list(yaml.safe_load_all((static / BINDINGS_FILE).read_text()))
    assert [b["spec"] for b in bindings] == [b["spec"] for b in expected]
    (params,) = _documents(defaults, "ConfigMap")
    assert params["data"] == yaml.safe_load((static / "params.yaml").read_text())["data"]

    ns = isolated_namespace
    rendered = template(helm, ns, "admission.apiAudiences={https://issuer.example}")
    (params,) = _documents(rendered, "ConfigMap")
    assert params["metadata"] == {
        **params["metadata"],
        "name": PARAM_CONFIGMAP,
        "namespace": ns,
    }
    assert params["data"] == {
        "operatorUsers": f"system:serviceaccount:{ns}:{RELEASE}-operator",
        "apiAudiences": "https://issuer.example",
    }
    for binding in _documents(rendered, "ValidatingAdmissionPolicyBinding"):
        if binding["metadata"]["name"].startswith("durable-search-immutable-"):
            assert "paramRef" not in binding["spec"]  # no parameter: nothing to fail closed on
        else:
            assert binding["spec"]["paramRef"]["namespace"] == ns
    # The API server compiles every expression on a (dry-run) create: the chart's copy is valid.
    admission_objects = _documents(
        rendered, "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "ConfigMap"
    )
    assert len(admission_objects) == 11
    dry = kubectl.run(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        "-",
        input=yaml.safe_dump_all(admission_objects),
    )
    assert dry.returncode == 0, dry.stderr

    disabled = template(helm, ns, "admission.enabled=false")
    assert not _documents(disabled, "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    # The operator may still read them, wherever they come from (manifests/policies/).
    assert any(
        d["metadata"]["name"].endswith("-operator-admission")
        for d in _documents(disabled, "ClusterRole")
    )


def test_the_operators_egress_policy_shuts_out_link_local_and_metadata_addresses_only(
    helm: str, kubectl: Kubectl, isolated_namespace: str
) -> None:
    assert not _documents(template(helm, isolated_namespace), "NetworkPolicy")
    rendered = template(helm, isolated_namespace, "networkPolicy.egress.enabled=true")
    (egress,) = _documents(rendered, "NetworkPolicy")
    spec = egress["spec"]
    assert spec["policyTypes"] == ["Egress"]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    everywhere, dns = spec["egress"]
    assert everywhere == {
        "to": [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}},
            # AWS's IPv6 metadata address alone: the rest of fc00::/7 may be the cluster's.
            {"ipBlock": {"cidr": "::/0", "except": ["fe80::/10", "fd00:ec2::254/128"]}},
        ]
    }
    assert "ports" not in everywhere  # the sites, the API server, the web Service: any port
    assert {p["port"] for p in dns["ports"]} == {53}
    assert {p["protocol"] for p in dns["ports"]} == {"UDP", "TCP"}
    assert {"ipBlock": {"cidr": "169.254.20.10/32"}} in dns["to"]  # NodeLocal DNSCache
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    manifest = yaml.safe_dump(egress)
    ns = isolated_namespace
    dry = kubectl.run("apply", "--dry-run=server", "-n", ns, "-f", "-", input=manifest)
    assert dry.returncode == 0, dry.stderr


def test_the_resourcequota_example_refuses_the_object_past_its_count(
    helm: str, kubectl: Kubectl, crds: None, isolated_namespace: str, api_client: client.ApiClient
) -> None:
    example = yaml.safe_load((REPO / "manifests" / "quota" / "resourcequota.yaml").read_text())
    (chart_quota,) = _documents(template(helm, "ns", "quota.enabled=true"), "ResourceQuota")
    assert chart_quota["spec"] == example["spec"]
    limits = {"searches": 2, "httptasks": 1, "searchproviders": 1}
    example["spec"]["hard"] = {
        f"count/{plural}.{GROUP}": str(count) for plural, count in limits.items()
    }
    kubectl("apply", "-n", isolated_namespace, "-f", "-", input=yaml.safe_dump(example))
    core = client.CoreV1Api(api_client)

    def counted() -> bool:
        status = core.read_namespaced_resource_quota("durable-search", isolated_namespace).status
        return bool(status and status.hard and status.used is not None and len(status.hard) == 3)

    eventually(counted, message="the quota controller computes the quota's usage")
    custom = client.CustomObjectsApi(api_client)
    specs = {
        "searches": ("Search", {"query": "q", "providerRefs": ["none"]}),
        "httptasks": ("HttpTask", {"request": {"url": "https://a.example/"}}),
        "searchproviders": ("SearchProvider", {"url": "https://a.example/?q={query}"}),
    }
    for plural, count in limits.items():
        kind, spec = specs[plural]

        def create(index: int, plural: str = plural, kind: str = kind, spec: Any = spec) -> None:
            custom.create_namespaced_custom_object(
                GROUP,
                VERSION,
                isolated_namespace,
                plural,
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": kind,
                    "metadata": {"name": f"{plural[:4]}-{index}"},
                    "spec": spec,
                },
            )

        for index in range(count):
            create(index)
        with pytest.raises(client.ApiException) as refused:
            create(count)
        assert refused.value.status == 403
        assert "exceeded quota: durable-search" in refused.value.body
        assert f"count/{plural}.{GROUP}" in refused.value.body
