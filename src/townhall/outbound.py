"""Outbound HTTP that cannot be pointed at the server's own network (SSRF).

Webhook URLs and dataset URLs are typed in by users. Left alone, `http://127.0.0.1:6379/` or
`http://169.254.169.254/` would make Townhall talk to its own Redis or the cloud metadata
service. Every outbound connection made through `guarded_client` resolves the host itself,
refuses private, loopback, link-local and other non-public addresses unless the settings allow
them, and then connects to the address it checked (so a DNS answer that changes between the
check and the connection, "DNS rebinding", cannot slip through). Redirects go through the same
check because each hop opens its own connection.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from townhall.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class OutboundRefused(Exception):
    """The destination resolves to an address the settings do not allow; the message names
    the host, the address and the setting that would allow it."""


@dataclass(frozen=True)
class OutboundPolicy:
    """Which destinations outbound requests may reach.

    Public (globally routable) addresses always; with `allow_private`, every address; else
    only the hosts and networks of `allowed` (host names compared case-insensitively, or CIDRs
    such as `10.20.0.0/16` for a city's internal systems).
    """

    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls.build(settings.outbound_allow_private, settings.outbound_allowed_hosts)

    @classmethod
    def build(cls, allow_private: bool, allowed: Iterable[str]) -> OutboundPolicy:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in allowed:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(allow_private, frozenset(hosts), tuple(networks))

    def address_allowed(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if self.allow_private:
            return True
        if any(address in network for network in self.allowed_networks):
            return True
        return address.is_global and not address.is_multicast

    def check_literal(self, host: str) -> None:
        """Refuse at once a host that is a non-public IP literal or `localhost` (no DNS
        lookup: used where a URL is accepted, before any request is made)."""
        name = host.strip("[]").lower().rstrip(".")
        if self.allow_private or name in self.allowed_hosts:
            return
        if name == "localhost" or name.endswith(".localhost"):
            raise OutboundRefused(f"{host} is the server itself; {_HINT}")
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return
        if not self.address_allowed(address):
            raise OutboundRefused(f"{host} is a private or reserved address; {_HINT}")

    def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of `host` to connect to, all of them checked. Raises OutboundRefused
        when any address is not allowed (a name that mixes public and private answers is
        refused as a whole), and OSError when the name does not resolve."""
        name = host.strip("[]")
        infos = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if self.allow_private or name.lower().rstrip(".") in self.allowed_hosts:
            return addresses
        for raw in addresses:
            address = ipaddress.ip_address(raw.split("%", 1)[0])
            if not self.address_allowed(address):
                raise OutboundRefused(
                    f"{host} resolves to {address}, a private, loopback, link-local or "
                    f"reserved address; {_HINT}"
                )
        return addresses


_HINT = (
    "outbound requests to it are refused (allow it with TOWNHALL_OUTBOUND_ALLOWED_HOSTS "
    "or TOWNHALL_OUTBOUND_ALLOW_PRIVATE)"
)


class _GuardedBackend(httpcore.NetworkBackend):
    """httpcore's network backend with the policy applied where the socket is opened."""

    def __init__(self, policy: OutboundPolicy, inner: httpcore.NetworkBackend) -> None:
        self._policy = policy
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self._policy.resolve(host, port)
        except OSError as failure:  # an unknown name: a network error like any other
            raise httpcore.ConnectError(f"{host}: {failure}") from failure
        error: Exception | None = None
        for address in addresses:
            try:
                # TLS still checks the certificate against the original host name: httpcore
                # starts TLS with the request's host as server_hostname, not this address.
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as failure:
                error = failure
        raise error or httpcore.ConnectError(f"{host} has no address")

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise OutboundRefused("unix sockets are not an outbound destination")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def guarded_client(policy: OutboundPolicy, **options: Any) -> httpx.Client:
    """An httpx client whose every connection passes `policy`. Environment proxies are not
    used (trust_env=False): a proxy would hide the real destination from the check."""
    transport = httpx.HTTPTransport(trust_env=False)
    # httpx has no public hook for the network backend: wrap the pool's own.
    pool = transport._pool
    pool._network_backend = _GuardedBackend(policy, pool._network_backend)
    return httpx.Client(transport=transport, trust_env=False, **options)
