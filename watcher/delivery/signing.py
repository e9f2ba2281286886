"""Standard Webhooks signatures (https://www.standardwebhooks.com/). Pure.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature
header is `v1,` + base64(HMAC-SHA256(key, content)).

The key: a secret written as `whsec_<base64>` (the Standard Webhooks form) is the
base64-decoded bytes after the prefix. Any other secret is used as its UTF-8
bytes; a receiver using a Standard Webhooks library then verifies with
`whsec_` + base64(secret).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    if secret.startswith(PREFIX):
        try:
            return base64.b64decode(secret[len(PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a whsec_ secret must be base64 after the prefix") from None
    return secret.encode("utf-8")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three webhook-* headers; without a secret only webhook-id and timestamp."""
    out = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret:
        out["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return out
