"""The client's address behind a trusted reverse proxy: `X-Forwarded-For` or RFC 7239 `Forwarded`.

Only a listed proxy is believed, and only about what it added itself. Each proxy appends the
address it saw to the right of whatever the client sent, so the client address is the right-most
entry that is not one of our own proxies (the rule of nginx's `real_ip_recursive` and Rails'
`remote_ip`): entries a client writes into the header itself are never reached. A proxy rewrites
one of the two headers and passes the other on as the client wrote it, so exactly one header,
the one the proxy is configured to write, is read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

Network = IPv4Network | IPv6Network
HEADERS = ("x-forwarded-for", "forwarded")
_PORT = re.compile(r"[0-9]{1,5}")


def parse_networks(text: str) -> tuple[Network, ...]:
    """`127.0.0.1, 10.0.0.0/8, ::1` as networks; a ValueError names an item that is not one."""
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ip_network(item))  # strict: 10.0.0.1/8 is a mistake, not a network
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(networks)


def _unmapped(address: IPv4Address | IPv6Address) -> IPv4Address | IPv6Address:
    """A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; they are IPv4 clients."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def node_address(text: str) -> str | None:
    """The address in one header entry, normalised, or None when there is none.

    Accepts what proxies write: `192.0.2.1`, `192.0.2.1:4711`, bare `2001:db8::1`,
    `[2001:db8::1]` and `[2001:db8::1]:4711`. `unknown`, obfuscated names (`_hidden`, RFC 7239
    6.3) and anything else are None.
    """
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest[:1] == ":" and _PORT.fullmatch(rest[1:]))):
            return None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not _PORT.fullmatch(port):
            return None
    else:
        host = text
    try:
        return str(_unmapped(ip_address(host)))
    except ValueError:
        return None


def x_forwarded_for(value: str) -> list[str | None]:
    """Every hop of an `X-Forwarded-For` value, left to right; None for one that is no address."""
    return [node_address(part) for part in value.split(",")]


def _split(text: str, separator: str) -> list[str]:
    """Split outside quoted strings (RFC 9110 5.6.4); a quote that never ends is a ValueError."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        raise ValueError("unterminated quoted string")
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _element_for(element: str) -> str | None:
    """The `for` node of one `Forwarded` element, or None when it has not exactly one."""
    nodes = []
    for pair in _split(element, ";"):
        name, equals, value = pair.partition("=")
        if name.strip().lower() == "for" and equals:
            nodes.append(_unquote(value.strip()))
    return node_address(nodes[0]) if len(nodes) == 1 else None


def forwarded_for(value: str) -> list[str | None]:
    """The `for=` address of every element of a `Forwarded` value (RFC 7239 4), left to right;
    None for an element without one. A value that cannot be parsed is one None."""
    try:
        return [_element_for(element) for element in _split(value, ",")]
    except ValueError:
        return [None]


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The reverse proxies whose forwarding header is believed, and which header they write."""

    networks: tuple[Network, ...] = ()
    header: str = "x-forwarded-for"

    def __post_init__(self) -> None:
        if self.header not in HEADERS:
            raise ValueError(f"the forwarding header is one of {', '.join(HEADERS)}")

    def trusts(self, address: str) -> bool:
        try:
            parsed = _unmapped(ip_address(address))
        except ValueError:
            return False
        return any(parsed in network for network in self.networks)

    def client(self, peer: str, headers: Mapping[str, str]) -> str:
        """The client's address: from the header when ``peer`` is a trusted proxy, else ``peer``.

        A malformed entry where the answer should be means the peer: its own address is the one
        thing known for sure.
        """
        value = headers.get(self.header)
        if value is None or not self.trusts(peer):
            return peer
        hops = forwarded_for(value) if self.header == "forwarded" else x_forwarded_for(value)
        for hop in reversed(hops):
            if hop is None:
                return peer
            if not self.trusts(hop):
                return hop
        return hops[0] or peer  # every hop is one of ours: the farthest
