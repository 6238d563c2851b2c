"""Our kubeconfig reader: merging, paths, inline data, tokens, exec plugins, in-cluster."""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from durable_search.errors import KubeconfigError, NotInClusterError
from durable_search.kube.kubeconfig import (
    Credential,
    ExecCredential,
    Kubeconfig,
    TokenFileCredential,
    in_cluster,
    kubeconfig_paths,
    load_connection,
)

pytestmark = pytest.mark.unit


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def config(
    *, user: dict[str, Any], cluster: dict[str, Any] | None = None, namespace: str | None = None
) -> dict[str, Any]:
    context: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    return {
        "clusters": [{"name": "c", "cluster": cluster or {"server": "https://127.0.0.1:6443/"}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "ctx", "context": context}],
        "current-context": "ctx",
    }


def test_inline_certificates_become_private_files_and_paths_are_relative_to_the_file(
    tmp_path: Path,
) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    path = write(
        tmp_path / "kubeconfig",
        config(
            cluster={
                "server": "https://127.0.0.1:6443/",
                "certificate-authority-data": base64.b64encode(pem).decode(),
            },
            user={"client-certificate": "certs/admin.crt", "client-key": "/abs/admin.key"},
            namespace="team-a",
        ),
    )
    connection = load_connection(str(path))
    assert connection.host == "https://127.0.0.1:6443"
    assert connection.ca_file is not None and Path(connection.ca_file).read_bytes() == pem
    assert Path(connection.ca_file).stat().st_mode & 0o077 == 0, "readable by us alone"
    assert connection.cert_file == str(tmp_path / "certs" / "admin.crt")
    assert connection.key_file == "/abs/admin.key"
    assert connection.namespace == "team-a"
    assert type(connection.credential) is Credential  # no header: the certificate authenticates


async def test_tokens_basic_auth_and_insecure_clusters(tmp_path: Path) -> None:
    token = load_connection(str(write(tmp_path / "a", config(user={"token": "abc"}))))
    assert await token.authorization() == "Bearer abc"
    basic = load_connection(
        str(write(tmp_path / "b", config(user={"username": "me", "password": "pw"})))
    )
    assert await basic.authorization() == "Basic " + base64.b64encode(b"me:pw").decode()
    insecure = load_connection(
        str(
            write(
                tmp_path / "c",
                config(
                    user={},
                    cluster={"server": "https://x:1", "insecure-skip-tls-verify": True},
                ),
            )
        )
    )
    assert insecure.verify is False


async def test_a_token_file_is_read_again_after_a_minute(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    now = [0.0]
    credential = TokenFileCredential(token, clock=lambda: now[0])
    assert await credential.authorization() == "Bearer one"
    token.write_text("two")
    now[0] = 30
    assert await credential.authorization() == "Bearer one"
    now[0] = 61
    assert await credential.authorization() == "Bearer two"


def plugin(tmp_path: Path, answers: list[dict[str, Any]]) -> dict[str, Any]:
    """An exec plugin that prints the next answer each time it runs (a counter file)."""
    script = tmp_path / "plugin.py"
    state = tmp_path / "runs"
    state.write_text("0")
    script.write_text(
        "import json, os, sys\n"
        f"state = {str(state)!r}\n"
        "n = int(open(state).read())\n"
        "open(state, 'w').write(str(n + 1))\n"
        f"answers = {json.dumps(answers)!r}\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "assert info['spec']['interactive'] is False and os.environ['EXTRA'] == 'yes'\n"
        "print(json.dumps({'kind': 'ExecCredential', 'status': json.loads(answers)[n]}))\n"
    )
    return {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(script)],
        "env": [{"name": "EXTRA", "value": "yes"}],
    }


async def test_an_exec_plugins_token_is_kept_until_it_expires(tmp_path: Path) -> None:
    soon = "2026-12-02T08:00:00Z"
    spec = plugin(
        tmp_path,
        [{"token": "first", "expirationTimestamp": soon}, {"token": "second"}],
    )
    connection = load_connection(str(write(tmp_path / "k", config(user={"exec": spec}))))
    credential = connection.credential
    assert isinstance(credential, ExecCredential)
    now = [dt.datetime(2026, 12, 2, 7, 0, tzinfo=dt.UTC)]
    credential.clock = lambda: now[0]
    assert await connection.authorization() == "Bearer first"
    assert (tmp_path / "runs").read_text() == "1", "run once at load, not again before expiry"
    now[0] = dt.datetime(2026, 12, 2, 8, 0, 1, tzinfo=dt.UTC)
    assert await connection.authorization() == "Bearer second"
    assert await connection.authorization() == "Bearer second"  # no expiry: kept
    assert (tmp_path / "runs").read_text() == "2"


def test_an_exec_plugin_that_fails_or_an_auth_provider_is_a_clear_error(tmp_path: Path) -> None:
    failing = {"command": sys.executable, "args": ["-c", "import sys; sys.exit('no login')"]}
    with pytest.raises(KubeconfigError, match="exited 1: no login"):
        load_connection(str(write(tmp_path / "a", config(user={"exec": failing}))))
    provider = {"auth-provider": {"name": "gcp"}}
    with pytest.raises(KubeconfigError, match="auth-provider 'gcp' is not supported"):
        load_connection(str(write(tmp_path / "b", config(user=provider))))
    with pytest.raises(KubeconfigError, match="does not exist"):
        load_connection(str(tmp_path / "missing"))
    broken = config(user={})
    broken["current-context"] = "other"
    with pytest.raises(KubeconfigError, match="context 'other' is not defined"):
        load_connection(str(write(tmp_path / "c", broken)))


def test_kubeconfig_files_merge_as_kubectl_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write(
        tmp_path / "first",
        {"current-context": "ctx", "users": [{"name": "u", "user": {"token": "first"}}]},
    )
    second = write(tmp_path / "second", config(user={"token": "second"}, namespace="ns2"))
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'absent'}:{second}")
    assert kubeconfig_paths() == [first, tmp_path / "absent", second]
    merged = Kubeconfig.read(kubeconfig_paths())
    assert merged.current_context == "ctx"
    assert merged.users["u"][0] == {"token": "first"}, "the first file naming an entry wins"
    assert merged.namespace() == "ns2"


async def test_in_cluster_reads_the_service_account_and_its_rotated_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(NotInClusterError):
        in_cluster(tmp_path)
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "namespace").write_text("durable-search\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    connection = in_cluster(tmp_path)
    assert connection.host == "https://[fd00::1]:443"
    assert connection.ca_file == str(tmp_path / "ca.crt")
    assert connection.namespace == "durable-search"
    assert await connection.authorization() == "Bearer sa-token"


def test_a_proxy_url_is_not_followed_and_a_warning_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cluster = {"server": "https://10.0.0.1:6443", "proxy-url": "http://proxy:3128"}
    with caplog.at_level("WARNING", logger="durable_search.kube"):
        connection = load_connection(
            str(write(tmp_path / "k", config(user={"token": "t"}, cluster=cluster)))
        )
    assert connection.host == "https://10.0.0.1:6443"
    assert "proxy-url is not followed" in caplog.text
