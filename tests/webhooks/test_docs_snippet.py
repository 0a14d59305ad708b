"""The verification snippet in docs/webhooks.md verifies what the service signs, and nothing else."""

from __future__ import annotations

import re
import time

from retention_webhooks.signing import new_secret, sign
from tests.support.paths import REPO

DOC = REPO / "docs" / "webhooks.md"


def _snippet() -> dict:
    text = DOC.read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    return namespace


def test_the_documented_verifier_accepts_a_signed_request_and_refuses_others() -> None:
    verify_webhook = _snippet()["verify_webhook"]
    secret, body = new_secret(), b'{"type":"score.changed","timestamp":"2024-05-01T09:00:00Z"}'
    now = int(time.time())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret, "msg_1", now, body),
    }
    assert verify_webhook(secret, headers, body)
    assert not verify_webhook(new_secret(), headers, body)
    assert not verify_webhook(secret, headers, body + b" ")
    assert not verify_webhook(secret, {**headers, "webhook-id": "msg_2"}, body)
    old = now - 3600
    stale = {
        **headers,
        "webhook-timestamp": str(old),
        "webhook-signature": sign(secret, "msg_1", old, body),
    }
    assert not verify_webhook(secret, stale, body)
