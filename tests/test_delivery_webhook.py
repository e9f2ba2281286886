"""Webhooks against real loopback receivers: formats, signatures, status handling, apprise."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook

from tests.delivery_helpers import alert
from tests.servers import LoopbackServer, Request, Response, WebhookReceiver
from watcher.core.errors import DeliveryError
from watcher.core.models import Digest
from watcher.delivery.channels import load_templates
from watcher.delivery.channels.webhook import WebhookChannel

SECRET = "whsec_" + base64.b64encode(b"a-32-byte-long-secret-for-tests!").decode()
TOKEN = "T0KEN-in-the-url-9f8e7d"


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    s = LoopbackServer()
    yield s
    s.close()


def hook(url: str, **kw: object) -> WebhookChannel:
    return WebhookChannel("ops-hook", url, templates=load_templates("ops-hook", None),
                          **kw)  # type: ignore[arg-type]


def send(channel: WebhookChannel, message: object) -> None:
    async def go() -> None:
        try:
            if isinstance(message, Digest):
                await channel.send_digest(message)
            else:
                await channel.send(message)  # type: ignore[arg-type]
        finally:
            await channel.aclose()
    asyncio.run(go())


def verifying(secret: str, seen: list[dict]) -> object:
    """A receiver that checks the Standard Webhooks signature as a real one would."""
    def handle(req: Request) -> Response:
        try:
            payload = Webhook(secret).verify(req.body, req.headers)
        except Exception as exc:
            return 401, {}, str(exc).encode()
        seen.append({"id": req.headers["webhook-id"], "payload": payload})
        return 204, {}, b""
    return handle


def test_generic_payload_signed_with_a_whsec_secret(server: LoopbackServer) -> None:
    seen: list[dict] = []
    server.routes["/hook"] = verifying(SECRET, seen)  # type: ignore[assignment]
    send(hook(server.url("/hook"), secret=SECRET), alert(3))
    (got,) = seen
    assert got["id"] == alert(3).delivery_id
    assert got["payload"]["schema"] == "watcher.alert/v1"
    assert got["payload"]["id"] == alert(3).delivery_id
    assert got["payload"]["match"]["snippet"] == alert(3).snippet
    req = server.requests[0]
    assert req.headers["content-type"] == "application/json"
    assert req.headers["webhook-signature"].startswith("v1,")


def test_digest_is_one_signed_payload(server: LoopbackServer) -> None:
    seen: list[dict] = []
    server.routes["/hook"] = verifying(SECRET, seen)  # type: ignore[assignment]
    digest = Digest("wg_" + "7" * 32, "missiles", (alert(1), alert(2), alert(3)))
    send(hook(server.url("/hook"), secret=SECRET), digest)
    (got,) = seen
    assert got["id"] == digest.id
    assert got["payload"]["schema"] == "watcher.digest/v1"
    assert [a["id"] for a in got["payload"]["alerts"]] == [alert(n).delivery_id
                                                          for n in (1, 2, 3)]


def test_raw_secret_verifies_as_its_base64_whsec_form(server: LoopbackServer) -> None:
    seen: list[dict] = []
    raw = "just-a-shared-password"
    server.routes["/hook"] = verifying(  # type: ignore[assignment]
        "whsec_" + base64.b64encode(raw.encode()).decode(), seen)
    send(hook(server.url("/hook"), secret=raw), alert(1))
    assert len(seen) == 1


def test_wrong_secret_fails_verification(server: LoopbackServer) -> None:
    seen: list[dict] = []
    server.routes["/hook"] = verifying(SECRET, seen)  # type: ignore[assignment]
    with pytest.raises(DeliveryError) as info:
        send(hook(server.url("/hook"), secret="whsec_" + base64.b64encode(b"other").decode()),
             alert(1))
    assert "answered 401" in str(info.value) and info.value.permanent
    assert seen == []


@pytest.mark.parametrize("fmt", ["slack", "discord", "teams"])
def test_chat_formats_post_their_json(server: LoopbackServer, fmt: str) -> None:
    server.routes["/chat"] = (200, {}, b"ok")
    send(hook(server.url("/chat"), format=fmt), alert(2))
    (req,) = server.requests
    body = req.json()
    assert req.method == "POST" and req.headers["webhook-id"] == alert(2).delivery_id
    text = json.dumps(body)
    assert "Story 2" in text and "https://news.example.org/2" in text


def test_ntfy_posts_json_to_the_server_root_with_the_topic(server: LoopbackServer) -> None:
    server.routes["/"] = (200, {}, b"{}")
    send(hook(server.url("/watcher-alerts"), format="ntfy"), alert(4))
    (req,) = server.requests
    assert req.path == "/"
    body = req.json()
    assert body["topic"] == "watcher-alerts" and body["click"] == "https://news.example.org/4"


@pytest.mark.parametrize(("status", "retry_after", "expect_after"), [
    (503, "120", 120.0), (429, "30", 30.0), (408, None, None), (425, None, None),
    (500, None, None)])
def test_retryable_statuses(receiver: WebhookReceiver, status: int, retry_after: str | None,
                            expect_after: float | None) -> None:
    receiver.status = status
    if retry_after:
        original = receiver.respond

        def respond(req: Request) -> Response:
            code, headers, body = original(req)
            return code, {**headers, "Retry-After": retry_after}, body
        receiver.respond = respond  # type: ignore[method-assign]
    with pytest.raises(DeliveryError) as info:
        send(hook(receiver.url("/hook")), alert(1))
    assert not info.value.permanent and info.value.retry_after == expect_after
    assert str(info.value) == f"deliver: channel 'ops-hook': webhook answered {status}"


def test_gone_disables_and_other_4xx_are_permanent(receiver: WebhookReceiver) -> None:
    receiver.status = 410
    with pytest.raises(DeliveryError) as info:
        send(hook(receiver.url("/hook")), alert(1))
    assert info.value.disable_channel and info.value.permanent
    receiver.status = 404
    with pytest.raises(DeliveryError) as info:
        send(hook(receiver.url("/hook")), alert(1))
    assert info.value.permanent and not info.value.disable_channel


def test_redirects_are_not_followed(server: LoopbackServer) -> None:
    server.routes["/old"] = (307, {"Location": server.url("/new")}, b"")
    server.routes["/new"] = (200, {}, b"ok")
    with pytest.raises(DeliveryError) as info:
        send(hook(server.url("/old")), alert(1))
    assert "redirects are not followed" in str(info.value) and info.value.permanent
    assert [r.path for r in server.requests] == ["/old"]


def test_errors_never_show_the_url_or_its_token(server: LoopbackServer) -> None:
    server.routes[f"/hook/{TOKEN}"] = (500, {}, b"boom " + TOKEN.encode())
    with pytest.raises(DeliveryError) as info:
        send(hook(server.url(f"/hook/{TOKEN}")), alert(1))
    assert TOKEN not in str(info.value) and "127.0.0.1" not in str(info.value)
    port = server.port
    server.close()
    with pytest.raises(DeliveryError) as info:
        send(hook(f"http://127.0.0.1:{port}/hook/{TOKEN}"), alert(1))
    assert "unreachable" in str(info.value) and TOKEN not in str(info.value)


def test_apprise_json_url_reaches_a_loopback_receiver(server: LoopbackServer) -> None:
    pytest.importorskip("apprise")
    from watcher.delivery.channels.apprise import AppriseChannel

    server.routes["/notify"] = (200, {}, b"ok")
    port = server.port
    ch = AppriseChannel("phone", f"json://127.0.0.1:{port}/notify",
                        load_templates("phone", None), timeout_s=20)
    asyncio.run(ch.send(alert(6)))
    (req,) = server.requests
    body = req.json()
    assert body["title"] == "[watcher] missiles: Story 6: a new tactical missile"
    assert "**tactical missile**" in body["message"]

    server.routes["/notify"] = (500, {}, b"no")
    with pytest.raises(DeliveryError) as info:
        asyncio.run(ch.send(alert(7)))
    assert not info.value.permanent and "apprise could not deliver" in str(info.value)
