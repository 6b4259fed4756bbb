"""Passwords, the login rate limit and tokens."""

from __future__ import annotations

import hashlib

import pytest
from server_helpers import CHEAP

from repconsole.server.auth import (
    OWASP,
    FailureLimiter,
    LoginSession,
    LoginSessions,
    ScryptParams,
    dummy_hash,
    hash_password,
    hash_token,
    new_token,
    parse_hash,
    verify_password,
)


def test_a_hash_at_owasp_cost_is_self_describing_and_verifies() -> None:
    encoded = hash_password("correct horse battery staple")  # the real cost, once
    scheme, n, r, p, _salt, _key = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**17), "8", "1")
    params, salt_bytes, key_bytes = parse_hash(encoded)
    assert params == OWASP and len(salt_bytes) == 16 and len(key_bytes) == 64
    assert verify_password("correct horse battery staple", encoded)
    assert not verify_password("correct horse battery stapl", encoded)


def test_hashes_are_salted_and_keep_their_own_parameters() -> None:
    a, b = hash_password("same", CHEAP), hash_password("same", CHEAP)
    assert a != b and verify_password("same", a) and verify_password("same", b)
    assert parse_hash(a)[0].n == 2**10  # verifies at the cost it was made with


@pytest.mark.parametrize(
    "bad",
    ["", "bcrypt$1$2$3$4$5", "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 86, "scrypt$1024$8$1$!!$AA", "scrypt$1024$8$1$AAAA$AAAA"],
)
def test_malformed_hashes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hash(bad)


def test_a_dummy_hash_costs_the_same_and_matches_nothing() -> None:
    real = hash_password("pw", CHEAP)
    dummy = dummy_hash(real)
    assert parse_hash(dummy)[0] == parse_hash(real)[0]
    assert not verify_password("pw", dummy) and not verify_password("", dummy)
    assert parse_hash(dummy_hash())[0] == ScryptParams(OWASP.n, OWASP.r, OWASP.p)
    assert parse_hash(dummy_hash(params=CHEAP))[0] == CHEAP
    # Salt and key lengths are copied too: the key length is scrypt's output length.
    odd = hash_password("pw", ScryptParams(n=2**9, r=4, p=2, salt_bytes=24, key_bytes=32))
    assert parse_hash(dummy_hash(odd, CHEAP))[0] == ScryptParams(n=2**9, r=4, p=2, salt_bytes=24, key_bytes=32)


def test_five_failures_within_a_minute_block_a_key() -> None:
    now = [0.0]
    limiter = FailureLimiter(5, 60.0, clock=lambda: now[0])
    for _ in range(4):
        limiter.fail("bob")
    assert not limiter.blocked("bob")
    limiter.fail("bob")
    assert limiter.blocked("bob") and not limiter.blocked("alice")
    now[0] = 59.0
    assert limiter.blocked("bob")
    now[0] = 60.5
    assert not limiter.blocked("bob")
    limiter.fail("bob")
    limiter.clear("bob")
    assert not limiter.blocked("bob")
    limiter.prune()


def test_tokens_are_192_bits_and_kept_only_as_hashes() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) == 32 for t in tokens)
    token = tokens.pop()
    assert hash_token(token) == hashlib.sha256(token.encode()).digest()
    sessions = LoginSessions()
    login = LoginSession(1, hash_token(token), "alice", 0.0, 100.0)
    sessions.add(login)
    assert sessions.find(token) is login and sessions.get(1) is login and sessions.find(tokens.pop()) is None
    assert sessions.expired_before(50.0) == [] and sessions.expired_before(100.0) == [login]
    login.connections.add(object())
    assert sessions.expired_before(100.0) == []  # never while a socket of it is open
    sessions.remove(login)
    assert sessions.find(token) is None and len(sessions) == 0
