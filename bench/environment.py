"""A benchmark environment: its own control plane, the demo site and the operator process.

The control plane's etcd writes to a disk-backed data directory with fsync on (unlike the test
suite's tmpfs + ``--unsafe-no-fsync``), so the figures include real storage latency.
"""

from __future__ import annotations

import contextlib
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

from durable_search.api.admission import LOCAL_PARAM_NAMESPACE
from durable_search.cluster import admission
from durable_search.cluster.controlplane import ControlPlane
from durable_search.cluster.pki import Pki
from tests.support.demo import DemoSite
from tests.support.processes import OperatorProcess

REPO = Path(__file__).resolve().parents[1]
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "CREATE", "UPDATE", "APPLY"}


@dataclass
class Environment:
    plane: ControlPlane
    api: client.ApiClient
    site: DemoSite
    operator: OperatorProcess
    namespace: str

    def apiserver_writes(self) -> Counter[tuple[str, str, str]]:
        """``apiserver_request_total`` for writes, by (verb, resource, subresource)."""
        state = self.plane.state()
        assert state is not None
        pki = Pki(self.plane.state_dir / "pki")
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        with urllib.request.urlopen(f"{state.server}/metrics", context=context, timeout=10) as r:
            text = r.read().decode()
        counts: Counter[tuple[str, str, str]] = Counter()
        pattern = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
        for line in text.splitlines():
            match = pattern.match(line)
            if not match:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
            if labels.get("verb", "").upper() in WRITE_VERBS:
                key = (labels["verb"], labels.get("resource", ""), labels.get("subresource", ""))
                counts[key] += int(float(match["value"]))
        return counts


def _install_admission(plane: ControlPlane, kubectl: list[str]) -> None:
    """The admission policies, as the chart installs them: they cost the API server CPU on
    every create and spec update, so the figures include them."""
    state = plane.state()
    assert state is not None
    admission.apply_and_wait(
        kubectl, admission.local_admission(state.server), LOCAL_PARAM_NAMESPACE
    )


@contextlib.contextmanager
def environment(
    namespace: str = "bench", operator_args: tuple[str, ...] = ()
) -> Iterator[Environment]:
    with tempfile.TemporaryDirectory(prefix="durable-search-bench-", dir=Path.home()) as scratch:
        root = Path(scratch)
        plane = ControlPlane(root / "cp", root / "kubeconfig", fast_storage=False)
        print("starting a control plane (etcd on disk, fsync on)", file=sys.stderr, flush=True)
        plane.start()
        try:
            kubectl = ["kubectl", f"--kubeconfig={plane.kubeconfig}"]
            subprocess.run(
                [*kubectl, "apply", "-f", str(REPO / "crds")], check=True, capture_output=True
            )
            subprocess.run(
                [*kubectl, "wait", "--for=condition=Established", "-f", str(REPO / "crds")],
                check=True,
                capture_output=True,
            )
            subprocess.run(
                [*kubectl, "create", "namespace", namespace], check=True, capture_output=True
            )
            _install_admission(plane, kubectl)
            api = config.new_client_from_config(config_file=str(plane.kubeconfig))
            site = DemoSite().start()
            operator = OperatorProcess(
                plane.kubeconfig,
                root / "operator.log",
                ["--namespace", namespace, "--allow-cidr=127.0.0.0/8", *operator_args],
                log_level="info",
            )
            operator.start()
            env = Environment(plane, api, site, operator, namespace)
            try:
                yield env
            finally:
                env.operator.stop()  # a fault run may have replaced it (bench.chaos blackhole)
                site.stop()
                api.close()
        finally:
            plane.stop()
