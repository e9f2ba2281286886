"""The address guard: feed content may only reach globally reachable addresses."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket

import httpcore


def is_public_address(ip: str) -> bool:
    """False for loopback, private, link-local, CGNAT, multicast, reserved, unspecified."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped or addr.sixtofour
        if mapped is not None:
            return is_public_address(str(mapped))
    if addr in ipaddress.ip_network("100.64.0.0/10"):
        return False
    return addr.is_global and not addr.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    literal = host.strip("[]")
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(literal))]  # an address needs no lookup
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
