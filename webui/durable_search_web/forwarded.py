"""Who the client is and how it reached us: ``X-Forwarded-*`` honoured from trusted proxies only.

Absolute URLs in answers (``Location``, ``statusQueryGetUri``...) derive from the request, and
the start rate is kept per client. Both would be the caller's to choose if any peer could say
"I am forwarding for 198.51.100.7 over https://evil/": so the ``X-Forwarded-For``, ``-Proto``,
``-Host`` and ``-Prefix`` headers are read only when the peer's address is in a
``--trusted-proxy`` range, and what is read is validated (a scheme is http or https, a host is a
host, a prefix is a plain path); a malformed value from a trusted proxy is a 400, never a URL.

A chain of proxies appends to ``X-Forwarded-For``: walking it from the right, every trusted
address is one more hop, and the first untrusted one is the client (anything to its left is
the client's to forge). Proxies that append to the other headers too write one value per hop,
so the value used is the one the outermost trusted proxy wrote: ``hops`` from the right (or the
only one, for proxies that overwrite). Everything here is pure: the middleware in ``app.py``
gives it the peer address and the raw headers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from durable_search.errors import DurableSearchError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDED_FOR = "X-Forwarded-For"
FORWARDED_PROTO = "X-Forwarded-Proto"
FORWARDED_HOST = "X-Forwarded-Host"
FORWARDED_PREFIX = "X-Forwarded-Prefix"
FORWARDED_HEADERS = (FORWARDED_FOR, FORWARDED_PROTO, FORWARDED_HOST, FORWARDED_PREFIX)
MAX_HOPS = 16  # X-Forwarded-For entries looked at, from the right
MAX_HOST = 261  # a 253-character name, a colon and a port
MAX_PREFIX = 256

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOST = re.compile(
    rf"(?:(?P<name>{_LABEL}(?:\.{_LABEL})*\.?)|\[(?P<v6>[0-9A-Fa-f:.]{{2,45}})\])"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_PREFIX_SEGMENT = r"/(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})+"
_PREFIX = re.compile(rf"(?:{_PREFIX_SEGMENT})*/?")
_BRACKETED = re.compile(r"\[(?P<address>[^\]]+)\](?::[0-9]{1,5})?")
_V4_WITH_PORT = re.compile(r"(?P<address>[0-9.]+):[0-9]{1,5}")


class ForwardedError(DurableSearchError, ValueError):
    """A header this service was about to honour does not hold what it must.

    A ``DurableSearchError`` (drawn in ``durable_search.errors``); a ``ValueError`` too, as it
    always was.
    """

    def __init__(self, header: str, detail: str) -> None:
        super().__init__(f"{header} {detail}")
        self.header = header


@dataclass(frozen=True)
class Origin:
    """How the client reached this service, and who the client is."""

    scheme: str
    host: str
    prefix: str
    client: str  # the client's address ("unknown" without one, e.g. a Unix socket)

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}{self.prefix}"


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``--trusted-proxy`` values: CIDRs (or single addresses); host bits set is an error."""
    networks = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            networks.append(ipaddress.ip_network(value, strict=True))
        except ValueError as error:
            raise ValueError(f"--trusted-proxy {value!r}: {error}") from None
    return tuple(networks)


def parse_address(text: str) -> IPAddress | None:
    """An IP address as sockets and proxies write it (port, brackets, zone allowed), or None."""
    text = text.strip()
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        text = bracketed.group("address")
    else:
        with_port = _V4_WITH_PORT.fullmatch(text)
        if with_port:
            text = with_port.group("address")
    text = text.split("%", 1)[0]  # an IPv6 zone (fe80::1%eth0) names no other host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: IPAddress | None, trusted: Sequence[IPNetwork]) -> bool:
    return address is not None and any(address in network for network in trusted)


def check_host(value: str, header: str) -> str:
    """``value`` when it is ``host[:port]`` (a DNS name, an IPv4 or a bracketed IPv6 literal)."""
    match = _HOST.fullmatch(value) if len(value) <= MAX_HOST else None
    if match is None:
        raise ForwardedError(header, f"is not a host[:port]: {value[:64]!r}")
    if match.group("v6") is not None:
        try:
            ipaddress.IPv6Address(match.group("v6"))
        except ValueError:
            raise ForwardedError(header, f"is not an IPv6 literal: {value[:64]!r}") from None
    port = match.group("port")
    if port is not None and not 0 < int(port) <= 65535:
        raise ForwardedError(header, f"has no valid port: {value[:64]!r}")
    return value


def check_prefix(value: str, header: str = FORWARDED_PREFIX) -> str:
    """A path prefix (``/a/b``), without its trailing slash; never ``//host`` nor ``..``."""
    if len(value) > MAX_PREFIX or not _PREFIX.fullmatch(value):
        raise ForwardedError(header, f"is not a plain path: {value[:64]!r}")
    segments = [unquote(segment) for segment in value.split("/")[1:]]
    if any(segment in (".", "..") or "/" in segment for segment in segments):
        raise ForwardedError(header, f"must not hold '.', '..' or encoded slashes: {value[:64]!r}")
    return value.rstrip("/")


def check_scheme(value: str, header: str = FORWARDED_PROTO) -> str:
    scheme = value.lower()
    if scheme not in ("http", "https"):
        raise ForwardedError(header, f"must be http or https, not {value[:32]!r}")
    return scheme


def _values(headers: Mapping[str, Sequence[str]], name: str) -> list[str]:
    """Every comma-separated value of every ``name`` header, in order."""
    values: list[str] = []
    for raw in headers.get(name, ()):
        values.extend(part.strip() for part in raw.split(","))
    return [value for value in values if value]


def resolve(
    peer: str | None,
    scheme: str,
    host: str,
    headers: Mapping[str, Sequence[str]],
    trusted: Sequence[IPNetwork],
) -> Origin:
    """The request's :class:`Origin` (raises :class:`ForwardedError` on a bad honoured value).

    ``peer`` is the socket's remote address, ``scheme`` and ``host`` what the request itself
    says (the ``Host`` header), ``headers`` the raw ``X-Forwarded-*`` values by header name.
    """
    peer_address = parse_address(peer) if peer else None
    client = str(peer_address) if peer_address is not None else (peer or "unknown")
    if not is_trusted(peer_address, trusted):
        return Origin(scheme, check_host(host, "the Host header"), "", client)

    hops = 1
    chain = _values(headers, FORWARDED_FOR)[-MAX_HOPS:]
    for entry in reversed(chain):
        address = parse_address(entry)
        if address is None:
            raise ForwardedError(FORWARDED_FOR, f"holds {entry[:64]!r}, not an address")
        client = str(address)
        if not is_trusted(address, trusted):
            break
        hops += 1

    def outermost(name: str) -> str | None:
        values = _values(headers, name)
        return values[max(0, len(values) - hops)] if values else None

    forwarded_scheme = outermost(FORWARDED_PROTO)
    forwarded_host = outermost(FORWARDED_HOST)
    forwarded_prefix = outermost(FORWARDED_PREFIX)
    return Origin(
        scheme=check_scheme(forwarded_scheme) if forwarded_scheme is not None else scheme,
        host=(
            check_host(forwarded_host, FORWARDED_HOST)
            if forwarded_host is not None
            else check_host(host, "the Host header")
        ),
        prefix=check_prefix(forwarded_prefix) if forwarded_prefix is not None else "",
        client=client,
    )
