"""Throwaway certificate authorities for TLS tests: a CA, server and client certificates (PEM)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from durable_search.cluster.pki import CertificateAuthority


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes


class ScratchCa:
    """A throwaway CA (the control plane's :class:`CertificateAuthority`), issuing PEM pairs."""

    def __init__(self, name: str) -> None:
        self._ca = CertificateAuthority.create(name)
        self.cert = self._ca.cert

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, common_name: str, *, dns: tuple[str, ...] = (), ips: tuple[str, ...] = (),
              server: bool) -> Issued:  # fmt: skip
        key, cert = self._ca.issue(common_name, server=server, names=[*dns, *ips])
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return Issued(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def server_context(server: Issued, client_ca: ScratchCa, directory: Path) -> ssl.SSLContext:
    """A server context presenting ``server`` and requiring a client certificate from the CA."""
    cert, key = directory / "server.crt", directory / "server.key"
    cert.write_bytes(server.cert_pem)
    key.write_bytes(server.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=client_ca.pem)
    return context
