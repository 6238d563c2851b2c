"""The local control plane behaves like a cluster: CRDs, watches, GC, namespaces, RBAC."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from durable_search.cluster.build import Binaries, cached_binaries
from durable_search.cluster.controlplane import ControlPlane
from durable_search.errors import ControlPlaneError
from tests.support.fixtures import Kubectl
from tests.support.kubeconfigs import kubeconfig_with_token
from tests.support.waiting import eventually

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.durablesearch.dev
spec:
  group: test.durablesearch.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
"""


def test_crd_applied_with_kubectl_is_served_and_validated(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", input=WIDGET_CRD)
    kubectl(
        "wait", "--for=condition=Established", "crd/widgets.test.durablesearch.dev", "--timeout=30s"
    )
    widget = {
        "apiVersion": "test.durablesearch.dev/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": namespace},
        "spec": {"size": 3},
    }
    kubectl("apply", "-f", "-", input=json.dumps(widget))
    served = json.loads(kubectl("get", "widget", "w1", "-n", namespace, "-o", "json"))
    assert served["spec"] == {"size": 3}

    widget["metadata"]["name"] = "w2"
    widget["spec"] = {"size": 0}
    rejected = kubectl.run("apply", "-f", "-", input=json.dumps(widget))
    assert rejected.returncode != 0
    assert "spec.size" in rejected.stderr
    assert "should be greater than or equal to 1" in rejected.stderr


def test_object_created_with_python_client_arrives_on_a_watch(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    events: queue.Queue[tuple[str, str]] = queue.Queue()
    watcher = watch.Watch()

    def follow() -> None:
        try:
            for event in watcher.stream(
                core.list_namespaced_config_map, namespace, timeout_seconds=30
            ):
                events.put((event["type"], event["object"].metadata.name))
        except Exception as error:  # the stream is cut when the test stops it
            events.put(("CLOSED", repr(error)))

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(0.5)  # the watch is established once its first list returns
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="watched"), data={"k": "v"}),
    )
    deadline = time.monotonic() + 20
    seen: list[tuple[str, str]] = []
    while time.monotonic() < deadline and ("ADDED", "watched") not in seen:
        try:
            seen.append(events.get(timeout=1))
        except queue.Empty:
            continue
    watcher.stop()
    assert ("ADDED", "watched") in seen


def test_deleting_an_owner_garbage_collects_its_dependent(
    api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid, controller=True
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="dependent", owner_references=[reference])
        ),
    )
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as error:
            return error.status == 404
        return False

    eventually(dependent_gone, message="the garbage collector removes the dependent")


def test_namespace_deletion_completes(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    name = f"t-doomed-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(
        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="content"))
    )
    core.delete_namespace(name)

    def namespace_gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as error:
            return error.status == 404
        return False

    eventually(namespace_gone, message="the namespace controller finishes the deletion")


def test_service_account_token_is_forbidden_without_a_role(
    api_client: client.ApiClient, kubectl: Kubectl, namespace: str, kubeconfig: Path, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = kubectl("create", "token", "nobody", "-n", namespace).strip()
    as_nobody = Kubectl(kubeconfig_with_token(kubeconfig, token, tmp_path / "nobody.kubeconfig"))

    denied = as_nobody.run("get", "configmaps", "-n", namespace)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
    assert f"system:serviceaccount:{namespace}:nobody" in denied.stderr

    # The same token is accepted once a Role grants the verb: the denial above was RBAC's.
    kubectl("create", "role", "reader", "--verb=list", "--resource=configmaps", "-n", namespace)
    kubectl(
        "create",
        "rolebinding",
        "reader",
        "--role=reader",
        f"--serviceaccount={namespace}:nobody",
        "-n",
        namespace,
    )
    eventually(
        lambda: as_nobody.run("get", "configmaps", "-n", namespace).returncode == 0, timeout=10
    )


def test_start_is_idempotent_and_stop_leaves_no_process(tmp_path: Path, kubeconfig: Path) -> None:
    plane = ControlPlane(tmp_path / "cp", tmp_path / "kubeconfig", fast_storage=True)
    first = plane.start()
    try:
        second = plane.start()
        assert second.pids == first.pids
        assert plane.is_running()
        assert (tmp_path / "kubeconfig").is_file()
    finally:
        plane.stop()
    for pid in first.pids.values():
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), f"pid {pid} survived stop"
    assert not (tmp_path / "kubeconfig").exists()
    assert not (tmp_path / "cp" / "state.json").exists()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_a_failed_start_names_the_component_and_shows_its_log(tmp_path: Path) -> None:
    real = cached_binaries()
    broken = tmp_path / "kube-apiserver"
    broken.write_text("#!/bin/sh\necho 'error: unknown flag --made-up' >&2\nexit 1\n")
    broken.chmod(0o755)
    binaries = Binaries(real.etcd, broken, real.kube_controller_manager)
    plane = ControlPlane(tmp_path / "cp", tmp_path / "kubeconfig", binaries=binaries)
    with pytest.raises(ControlPlaneError, match="kube-apiserver exited during startup") as error:
        plane.start()
    assert "unknown flag --made-up" in str(error.value)
    assert plane.state() is None, "a failed start stops what it had started"
