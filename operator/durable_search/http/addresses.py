"""Which addresses the operator may connect to: every non-global address is denied by default.

An explicit table of special-purpose ranges (IANA's IPv4 and IPv6 special-purpose registries)
rather than ``ipaddress.is_global``/``is_private``: Python 3.11.7 predates the fix for
CVE-2024-4032, where those predicates misclassified several ranges. IPv6 addresses that embed an
IPv4 address (IPv4-mapped, IPv4-translated, IPv4-compatible, NAT64, 6to4) are judged by the
embedded address, because that is where a connection to them ends up; any other IPv6 address
outside 2000::/3, the only block that holds global unicast addresses, is refused.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4_SPECIAL: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "'this network' (unspecified)"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.31.196.0/24", "AS112"),
    ("192.52.193.0/24", "AMT"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("192.175.48.0/24", "AS112"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "broadcast"),
)

_V6_SPECIAL: tuple[tuple[str, str], ...] = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignments (incl. Teredo)"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing SIDs"),
    ("fc00::/7", "unique local (ULA)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)

_V4_TABLE = tuple((ipaddress.IPv4Network(n), why) for n, why in _V4_SPECIAL)
_V6_TABLE = tuple((ipaddress.IPv6Network(n), why) for n, why in _V6_SPECIAL)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_COMPAT = ipaddress.IPv6Network("::/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # SIIT, RFC 2765
# Only this block holds global unicast addresses (RFC 4291 §2.4); the rest never is global.
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, if any: IPv4-mapped, IPv4-translated,
    IPv4-compatible, NAT64 or 6to4 — where a connection to it ends up."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _TRANSLATED or (address in _COMPAT and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def special_range(address: Address) -> str | None:
    """Why ``address`` is not a global unicast address, or None when it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            why = special_range(inner)
            return f"embeds {inner}, {why}" if why else None
        for network6, why6 in _V6_TABLE:
            if address in network6:
                return why6
        if address not in _GLOBAL_UNICAST:
            return "non-global (outside 2000::/3)"
        return None
    for network4, why4 in _V4_TABLE:
        if address in network4:
            return why4
    return None


@dataclass(frozen=True)
class AddressPolicy:
    """Deny every special-purpose address unless an ``allow_cidrs`` network contains it."""

    allow_cidrs: tuple[Network, ...] = ()

    @classmethod
    def from_strings(cls, cidrs: Iterable[str]) -> AddressPolicy:
        return cls(tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip()))

    def refusal(self, address: Address) -> str | None:
        """None when the operator may connect to ``address``, else the reason it may not."""
        candidates: list[Address] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            inner = embedded_ipv4(address)
            if inner is not None:
                candidates.append(inner)
        for candidate in candidates:
            if any(candidate in network for network in self.allow_cidrs):
                return None
        why = special_range(address)
        if why is None:
            return None
        return f"{address} is {_article(why)} {why} address, not opened by --allow-cidr"


def _article(words: str) -> str:
    return "an" if words[:1].lower() in "aeiou" else "a"
