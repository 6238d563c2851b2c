"""Per-task TLS: a CA bundle trusted instead of the system roots, a client certificate, a name.

The material (PEM text read from a ConfigMap and a kubernetes.io/tls Secret at send time) comes
in a :class:`TlsMaterial`; :func:`build_context` turns it into an ``ssl.SSLContext`` or raises
an :class:`InvalidRequestError` that says which part is broken (the PEM itself never appears in
a message). ``http.client`` keeps one connection pool per distinct material, keyed by
:attr:`TlsMaterial.fingerprint` (a hash of the content, so an edited Secret gets a new pool).

Python's ``ssl`` loads a certificate chain only from a file: the pair is written to an anonymous
in-memory file (``memfd_create``) for the one call and closed at once, so a private key never
touches a disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from durable_search.errors import InvalidRequestError


@dataclass(frozen=True)
class TlsMaterial:
    ca_pem: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    server_name: str | None = None
    # Where each part came from, for messages (never the content).
    ca_source: str = "the CA bundle"
    cert_source: str = "the client certificate"

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for part in (
            (self.ca_pem or "").encode(),
            self.cert_pem or b"",
            self.key_pem or b"",
            (self.server_name or "").encode(),
        ):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.hexdigest()

    def __repr__(self) -> str:  # never a key in a log line or a traceback
        return f"TlsMaterial(fingerprint={self.fingerprint[:12]}, server_name={self.server_name!r})"


def build_context(material: TlsMaterial) -> ssl.SSLContext:
    """A client context verifying against ``material``'s CA (or the system roots)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if material.ca_pem is not None:
        # Instead of the system roots: a fresh context with only these.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if "-----BEGIN CERTIFICATE-----" not in material.ca_pem:
            raise InvalidRequestError(f"{material.ca_source} holds no PEM certificate")
        try:
            context.load_verify_locations(cadata=material.ca_pem)
        except (ssl.SSLError, ValueError) as error:
            raise InvalidRequestError(
                f"{material.ca_source} is not a usable PEM certificate bundle: {_reason(error)}"
            ) from None
    if material.cert_pem is not None or material.key_pem is not None:
        if not material.cert_pem or not material.key_pem:
            raise InvalidRequestError(f"{material.cert_source} needs both tls.crt and tls.key")
        try:
            with _in_memory_file(material.cert_pem + b"\n" + material.key_pem) as path:
                context.load_cert_chain(path)
        except (ssl.SSLError, ValueError, OSError) as error:
            raise InvalidRequestError(
                f"{material.cert_source} is not a usable PEM certificate and unencrypted key "
                f"pair: {_reason(error)}"
            ) from None
    return context


def _reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    return type(error).__name__


@contextlib.contextmanager
def _in_memory_file(data: bytes) -> Iterator[str]:
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        fd = memfd("durable-search-tls", 0)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.NamedTemporaryFile() as handle:  # mode 0600, removed on close
        handle.write(data)
        handle.flush()
        yield handle.name
