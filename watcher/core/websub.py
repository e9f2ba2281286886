"""WebSub (W3C Recommendation, 2018): the subscriber's decisions, as pure functions.

A feed that names a hub (rel="hub") can be pushed to us within seconds of a story,
instead of waiting for the next poll. Each subscription has its own callback path
and its own secret; a push is believed only when its X-Hub-Signature is the HMAC of
the body under that secret, checked before anything is parsed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import urljoin

SubState = Literal["subscribing", "active", "unsubscribing"]
# The digests a hub may sign with (section 8): sha1 only when that is all it sends.
_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384,
            "sha512": hashlib.sha512}
DEFAULT_LEASE_S = 10 * 86400.0  # asked of the hub; it decides
RENEW_BEFORE = 0.1  # renew when this share of the lease is left
MAX_LEASE_S = 365 * 86400.0


@dataclass(frozen=True)
class Subscription:
    """A feed's subscription at its WebSub hub, as the store keeps it."""

    feed: str
    hub: str
    topic: str
    callback_id: str  # the path segment the hub calls: unguessable, one per subscription
    secret: str
    state: SubState
    requested_at: datetime
    lease_until: datetime | None = None  # set once the hub verified a subscribe


@dataclass(frozen=True)
class Answer:
    """What to answer the hub, and the subscription as it is after (None: delete it)."""

    status: int
    body: str
    subscription: Subscription | None
    changed: bool = False


def hub_links(links: list[tuple[str, str]], base: str) -> tuple[str | None, str | None]:
    """(hub, self) of a feed's <link>s or Link headers, given as (rel, href) pairs."""
    hub = topic = None
    for rel, href in links:
        rels = rel.lower().split()
        if "hub" in rels and hub is None and href:
            hub = urljoin(base, href.strip())
        if "self" in rels and topic is None and href:
            topic = urljoin(base, href.strip())
    return hub, topic


_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[^;,]*)*)')
_REL = re.compile(r'rel\s*=\s*"?([^";,]*)"?', re.IGNORECASE)


def link_header(value: str | None) -> list[tuple[str, str]]:
    """An HTTP Link header (RFC 8288) as (rel, href) pairs: where WebSub discovery
    looks first."""
    pairs: list[tuple[str, str]] = []
    for href, params in _LINK.findall(value or ""):
        rel = _REL.search(params)
        if rel:
            pairs.append((rel.group(1).strip(), href.strip()))
    return pairs


def signature_ok(secret: str, header: str | None, body: bytes) -> bool:
    """X-Hub-Signature: method=hexdigest, the HMAC of the body under the secret."""
    if not header or "=" not in header:
        return False
    method, _, given = header.strip().partition("=")
    digest = _DIGESTS.get(method.lower())
    if digest is None:
        return False
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    return hmac.compare_digest(expected, given.strip().lower())


def verify_intent(sub: Subscription | None, params: dict[str, str], now: datetime) -> Answer:
    """The hub asks whether we want this (section 5.3): echo the challenge only when
    topic and mode are the ones we asked for."""
    mode, topic = params.get("hub.mode", ""), params.get("hub.topic", "")
    if sub is None:
        return Answer(404, "unknown subscription", None)
    if mode == "denied":
        # The hub refused us (or dropped us); polling goes on as before.
        return Answer(200, "", None, changed=True)
    challenge = params.get("hub.challenge")
    if topic != sub.topic or not challenge:
        return Answer(404, "topic or challenge does not match", sub)
    if mode == "subscribe" and sub.state in ("subscribing", "active"):
        try:
            lease = min(float(params.get("hub.lease_seconds", DEFAULT_LEASE_S)), MAX_LEASE_S)
        except ValueError:
            lease = DEFAULT_LEASE_S
        return Answer(200, challenge, replace(sub, state="active",
                                              lease_until=now + timedelta(seconds=lease)),
                      changed=True)
    if mode == "unsubscribe" and sub.state == "unsubscribing":
        return Answer(200, challenge, None, changed=True)
    return Answer(404, f"not expecting {mode or 'no mode'}", sub)


def needs_renewal(sub: Subscription, now: datetime, lease_s: float = DEFAULT_LEASE_S,
                  retry_after_s: float = 3600.0) -> bool:
    """An active subscription near the end of its lease, or a request the hub never
    verified (asked again after a while)."""
    if sub.state == "active" and sub.lease_until is not None:
        left = (sub.lease_until - now).total_seconds()
        total = max((sub.lease_until - sub.requested_at).total_seconds(), 1.0)
        return left <= total * RENEW_BEFORE
    return (now - sub.requested_at).total_seconds() >= min(retry_after_s, lease_s)


def pushing(sub: Subscription | None, now: datetime) -> bool:
    """Pushes are expected: the feed is then polled only as a safety net."""
    return sub is not None and sub.state == "active" and sub.lease_until is not None \
        and sub.lease_until > now
