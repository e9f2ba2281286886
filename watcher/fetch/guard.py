"""The address guard: feed content may only reach globally reachable addresses.

An address is public when IANA's special-purpose registries (netaddr's tables)
call it globally reachable and it is no multicast group. An IPv6 address that
carries an IPv4 one (mapped, translated, NAT64, 6to4) reaches that IPv4 host
through a gateway, so it is decided by the address it carries; an
IPv4-compatible one (::a.b.c.d, deprecated) is outside global unicast: refused.
Python's `ipaddress` is not used for the decision: its tables differ between
Python releases (3.11 calls 192.0.0.8 and 64:ff9b::7f00:1 global).
"""

from __future__ import annotations

import asyncio
import socket

import httpcore
from netaddr import INET_ATON, AddrFormatError, IPAddress, IPNetwork

# IPv6 ranges whose low 32 bits are the IPv4 address a packet goes on to.
_CARRY_LOW_32 = tuple(IPNetwork(n) for n in (
    "::ffff:0:0/96",     # IPv4-mapped
    "::ffff:0:0:0/96",   # IPv4-translated (RFC 2765)
    "64:ff9b::/96",      # NAT64 well-known prefix (RFC 6052)
))
_SIX_TO_FOUR = IPNetwork("2002::/16")  # the IPv4 address is bits 16 to 48

# Not globally reachable, but missing from netaddr's tables: deprecated before
# them, or registered after its release.
_REFUSED = tuple(IPNetwork(n) for n in (
    "192.88.99.0/24",    # 6to4 relay anycast, deprecated (RFC 7526)
    "224.0.0.0/4",       # multicast: the registries call parts of it global
    "fec0::/10",         # site-local, deprecated (RFC 3879)
    "64:ff9b:1::/48",    # NAT64 local-use prefix (RFC 8215): a private network's
    "2001::/32",         # Teredo: both ends' IPv4 addresses are hidden in it
    "3fff::/20",         # documentation (RFC 9637)
    "5f00::/16",         # segment routing SIDs (RFC 9602)
    "ff00::/8",          # multicast
))
_GLOBAL_UNICAST_V6 = IPNetwork("2000::/3")  # everything else is reserved or local


def parse_address(text: str) -> IPAddress | None:
    """`text` as an IP address in any spelling a resolver would take, else None.

    Besides the usual forms: inet_aton's (decimal 2130706433, hex 0x7f.1, octal
    0177.0.0.1, short 127.1), brackets, and IPv6 zone ids (kept in the scope
    check: see `is_public_address`).
    """
    literal = text.strip().removeprefix("[").removesuffix("]")
    address, _, _zone = literal.partition("%")
    try:
        if ":" in address:
            return IPAddress(address, 6)
        return IPAddress(address, 4, flags=INET_ATON)
    except (AddrFormatError, ValueError, TypeError):
        return None


def carried_ipv4(address: IPAddress) -> IPAddress | None:
    """The IPv4 address an IPv6 address stands for, when it carries one."""
    if address.version != 6:
        return None
    value = int(address)
    if any(address in net for net in _CARRY_LOW_32):
        return IPAddress(value & 0xFFFFFFFF, 4)
    if address in _SIX_TO_FOUR:
        return IPAddress((value >> 80) & 0xFFFFFFFF, 4)
    return None


def is_public_address(ip: str) -> bool:
    """True only for a globally reachable unicast address, however it is spelled.

    False for loopback, private, link-local, site-local, CGNAT, multicast,
    documentation, reserved and unspecified addresses, for an address with a
    zone id (only a link-local address has one), and for an IPv6 address that
    carries an IPv4 address which is not public.
    """
    address = parse_address(ip)
    if address is None or "%" in ip:
        return False
    carried = carried_ipv4(address)
    if carried is not None:
        return is_public_address(str(carried))
    if address.version == 6 and address not in _GLOBAL_UNICAST_V6:
        return False
    if any(address in net for net in _REFUSED):
        return False
    return bool(address.is_global())


async def lookup(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives for a name: the one lookup made."""
    loop = asyncio.get_running_loop()
    # An ASCII name as bytes: a str would go through the idna codec (loaded at first use)
    # to come out the same; httpx has already turned a non-ASCII name into xn-- form.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    try:
        infos = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _canonical(text: str) -> str:
    """An address in its usual spelling, zone id kept; a non-address as it came."""
    address = parse_address(text)
    if address is None:
        return text
    _, zone_sep, zone = text.strip().strip("[]").partition("%")
    return str(address) + zone_sep + zone


async def resolve(host: str, port: int) -> list[str]:
    """The addresses to connect to for `host`, each in its usual spelling.

    A literal address in any spelling is taken as it is, with no lookup.
    """
    if parse_address(host) is not None:
        return [_canonical(host)]
    return list(dict.fromkeys(_canonical(a) for a in await lookup(host, port)))
