"""Who sent a request: the peer's address, or behind trusted proxies (an ingress, a load balancer)
the address they say they forwarded for.

X-Forwarded-For is a list each proxy appends its peer to, so only its right end is vouched for: walk
it from the right past our own trusted proxies; the first address that is not one of them is the
sender. Anything left of it was written by the sender itself. From a peer that is not a trusted
proxy the header is ignored: otherwise a flood could name a new sender with every request."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

from aiohttp import web

Networks = Sequence[IPv4Network | IPv6Network]


def _trusted(address: str, proxies: Networks) -> bool:
    try:
        ip = ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def sender_address(request: web.BaseRequest, proxies: Networks) -> str:
    peer = request.remote or "-"
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [
        hop.strip() for value in request.headers.getall("X-Forwarded-For", []) for hop in value.split(",")
    ]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            try:
                return str(ip_address(hop))
            except ValueError:
                return peer  # garbage where an address belongs: not a sender we can name
    return peer
