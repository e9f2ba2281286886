"""WebSub: the subscriber's decisions as tables, then a small hub on loopback."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from watcher.core.websub import (
    Subscription,
    hub_links,
    needs_renewal,
    pushing,
    signature_ok,
    verify_intent,
)

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
SUB = Subscription("f", "https://hub.test/", "https://f.test/feed.xml", "cb", "s3cret",
                   "subscribing", T0)
BODY = b"<rss/>"


def sign(method: str, secret: str = "s3cret", body: bytes = BODY) -> str:
    return f"{method}=" + hmac.new(secret.encode(), body, getattr(hashlib, method)).hexdigest()


@pytest.mark.parametrize(("header", "ok"), [
    (sign("sha256"), True),
    (sign("sha1"), True),
    (sign("sha512"), True),
    (sign("sha256").upper().replace("SHA256=", "sha256="), True),
    (sign("sha256", secret="other"), False),
    (sign("sha256", body=b"<rss>changed</rss>"), False),
    ("md5=" + hashlib.md5(BODY).hexdigest(), False),
    ("sha256", False),
    (None, False),
])
def test_signatures(header: str | None, ok: bool) -> None:
    assert signature_ok("s3cret", header, BODY) is ok


def params(mode: str, topic: str = SUB.topic, **kw: str) -> dict[str, str]:
    return {"hub.mode": mode, "hub.topic": topic, "hub.challenge": "c-123", **kw}


def test_verification_of_intent() -> None:
    ok = verify_intent(SUB, params("subscribe", **{"hub.lease_seconds": "3600"}), T0)
    assert (ok.status, ok.body) == (200, "c-123")
    assert ok.subscription is not None and ok.subscription.state == "active"
    assert ok.subscription.lease_until == T0 + timedelta(hours=1)
    assert verify_intent(SUB, params("subscribe", topic="https://evil.test/"), T0).status == 404
    assert verify_intent(SUB, params("unsubscribe"), T0).status == 404  # we did not ask
    assert verify_intent(None, params("subscribe"), T0).status == 404
    leaving = replace(SUB, state="unsubscribing")
    bye = verify_intent(leaving, params("unsubscribe"), T0)
    assert (bye.status, bye.body, bye.subscription) == (200, "c-123", None)
    denied = verify_intent(SUB, {"hub.mode": "denied", "hub.topic": SUB.topic}, T0)
    assert denied.subscription is None and denied.changed


def test_leases_renewals_and_hub_links() -> None:
    active = replace(SUB, state="active", lease_until=T0 + timedelta(days=10))
    assert pushing(active, T0) and not pushing(SUB, T0)
    assert not pushing(active, T0 + timedelta(days=11))
    assert not needs_renewal(active, T0 + timedelta(days=8))
    assert needs_renewal(active, T0 + timedelta(days=9, hours=1))
    assert not needs_renewal(SUB, T0 + timedelta(minutes=5))
    assert needs_renewal(SUB, T0 + timedelta(hours=2))  # never verified: ask again
    assert hub_links([("alternate", "/x"), ("hub", "https://hub.test/"), ("self", "/feed")],
                     "https://f.test/rss") == ("https://hub.test/", "https://f.test/feed")
    assert hub_links([], "https://f.test/") == (None, None)
