"""The address guard, in every spelling: as a link's host, and as a name lookup's answer.

Connections are recorded at the transport's edge and never made: a refused
address must not even be tried, an allowed one is tried (and fails here, so
nothing leaves the machine).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

import watcher.fetch.guard as guard
import watcher.fetch.transport as transport
from watcher.core.errors import FetchError
from watcher.core.models import Feed
from watcher.fetch.client import Fetcher

REFUSED = [
    "127.0.0.1", "2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1", "017700000001",
    "127.1", "10.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "0", "192.0.0.8", "192.0.0.170", "192.0.2.1", "198.18.0.1",
    "198.51.100.7", "203.0.113.9", "240.0.0.1", "255.255.255.255", "224.0.0.1",
    "239.255.255.250", "192.88.99.1",
    "::1", "::", "::127.0.0.1", "::7f00:1", "::ffff:127.0.0.1", "::ffff:7f00:1",
    "0:0:0:0:0:ffff:7f00:1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "::ffff:0:127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b::127.0.0.1",
    "64:ff9b:1::a00:1", "64:ff9b:1::808:808", "2002:7f00:1::1", "2002:a00:1::1",
    "2001::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "fec0::1", "fe80::1",
    "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "ff0e::1", "2001:db8::1",
    "3fff::1", "5f00::1", "100::1", "2606:4700::1111%eth0",
]
# each with the address a connection is tried to
PUBLIC = [
    ("8.8.8.8", "8.8.8.8"), ("134744072", "8.8.8.8"), ("0x8.0x8.0x8.0x8", "8.8.8.8"),
    ("1.1.1.1", "1.1.1.1"), ("192.0.0.9", "192.0.0.9"),
    ("2606:4700:4700::1111", "2606:4700:4700::1111"), ("::ffff:8.8.8.8", "::ffff:8.8.8.8"),
    ("::ffff:808:808", "::ffff:8.8.8.8"), ("64:ff9b::808:808", "64:ff9b::808:808"),
    ("2002:808:808::1", "2002:808:808::1"),
]


def link(spelling: str) -> str:
    """`spelling` as the host of a URL: IPv6 in brackets, its zone id's % encoded."""
    if ":" in spelling:
        return "http://[" + spelling.replace("%", "%25") + "]/"
    return f"http://{spelling}/"


class Edge:
    """The resolver and the connection attempts, at the transport's edge."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answer: str | None) -> None:
        self.looked_up: list[str] = []
        self.tried: list[str] = []

        async def lookup(host: str, port: int) -> list[str]:
            self.looked_up.append(host)
            if answer is None:
                raise AssertionError(f"{host} was looked up")
            return [answer]

        async def connect(ip: str, *args: Any) -> transport._Stream:
            self.tried.append(ip)
            raise OSError("no network in tests")
        monkeypatch.setattr(guard, "lookup", lookup)
        monkeypatch.setattr(transport, "_open", connect)

    def fetch(self, url: str) -> FetchError:
        feed = Feed(name="t", url="http://feeds.example/f.xml", interval_s=60)

        async def go() -> FetchError:
            async with Fetcher() as fetcher:
                with pytest.raises(FetchError) as caught:
                    await fetcher.fetch_page(feed, url)
                return caught.value
        return asyncio.run(go())


@pytest.mark.parametrize("spelling", REFUSED)
def test_refused_as_a_link_s_host(spelling: str, monkeypatch: pytest.MonkeyPatch) -> None:
    edge = Edge(monkeypatch, answer=None)
    error = edge.fetch(link(spelling))
    # httpx itself refuses a dotted quad with leading zeros (0177.0.0.1) as invalid
    assert re.search(r"is not public; refused|invalid URL: Invalid IPv4", str(error))
    assert edge.tried == [] and edge.looked_up == []


@pytest.mark.parametrize("spelling", REFUSED)
def test_refused_as_a_lookup_s_answer(spelling: str, monkeypatch: pytest.MonkeyPatch) -> None:
    edge = Edge(monkeypatch, answer=spelling)
    error = edge.fetch("http://news.example/a")
    assert "of news.example is not public; refused" in str(error)
    assert edge.looked_up == ["news.example"] and edge.tried == []


@pytest.mark.parametrize(("spelling", "address"), PUBLIC)
def test_public_tried_as_a_link_s_host(spelling: str, address: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    edge = Edge(monkeypatch, answer=None)
    error = edge.fetch(link(spelling))
    assert "cannot connect" in str(error)
    assert edge.tried == [address] and edge.looked_up == []


@pytest.mark.parametrize(("spelling", "address"), PUBLIC)
def test_public_tried_as_a_lookup_s_answer(spelling: str, address: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    edge = Edge(monkeypatch, answer=spelling)
    assert "cannot connect" in str(edge.fetch("http://news.example/a"))
    assert edge.tried == [address]


def test_of_several_answers_only_the_public_ones_are_tried(
        monkeypatch: pytest.MonkeyPatch) -> None:
    edge = Edge(monkeypatch, answer=None)

    async def lookup(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "64:ff9b::a00:1", "8.8.8.8", "::ffff:10.0.0.1"]
    monkeypatch.setattr(guard, "lookup", lookup)
    edge.fetch("http://news.example/a")
    assert edge.tried == ["8.8.8.8"]


@pytest.mark.parametrize("spelling", REFUSED)
def test_table_agrees_with_is_public_address(spelling: str) -> None:
    assert guard.is_public_address(spelling) is False


@pytest.mark.parametrize(("spelling", "address"), PUBLIC)
def test_public_table_agrees_with_is_public_address(spelling: str, address: str) -> None:
    assert guard.is_public_address(spelling) is True
