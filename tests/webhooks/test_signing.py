"""Signatures as Standard Webhooks defines them, checked against the spec's published vector."""

from __future__ import annotations

import base64

from retention_webhooks.signing import SECRET_PREFIX, new_secret, secret_key, sign, verify

# The reference vector of the Standard Webhooks specification (its libraries' "sign" test).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_spec_vector_signs_and_verifies() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    assert verify(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE)
    # One of several space-separated signatures (a receiver during key rotation).
    assert verify(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, "v1,bm90aXQ= " + SPEC_SIGNATURE)


def test_any_change_fails_verification() -> None:
    other = new_secret()
    assert not verify(other, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE)
    assert not verify(SPEC_SECRET, SPEC_ID + "x", SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE)
    assert not verify(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP + 1, SPEC_BODY, SPEC_SIGNATURE)
    assert not verify(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, b'{"test":2432232314}', SPEC_SIGNATURE)


def test_new_secrets_are_whsec_and_32_random_bytes() -> None:
    secrets = {new_secret() for _ in range(100)}
    assert len(secrets) == 100
    for secret in secrets:
        assert secret.startswith(SECRET_PREFIX)
        assert len(secret_key(secret)) == 32
        assert base64.b64encode(secret_key(secret)).decode() == secret[len(SECRET_PREFIX) :]
