"""Standard Webhooks signatures (https://www.standardwebhooks.com/): secrets, signing, checking.

A secret is `whsec_` + base64 of random bytes; the key is those bytes. A message is signed as
`v1,` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), sent with `webhook-id` and
`webhook-timestamp` (unix seconds) so a receiver can check the signature and reject replays.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret: the base64-decoded part after the prefix."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one attempt."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, message_id: str, timestamp: int, body: bytes, header: str) -> bool:
    """Whether any of the space-separated signatures in `header` is this message's (what a
    receiver runs; here for tests and as the documented reference)."""
    expected = sign(secret, message_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in header.split())
