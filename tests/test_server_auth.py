"""Passwords, the login rate limit and tokens."""

from __future__ import annotations

import hashlib

import pytest
from server_helpers import CHEAP

from repconsole.server.auth import (
    OWASP,
    Argon2Params,
    FailureLimiter,
    LoginSession,
    LoginSessions,
    ScryptParams,
    dummy_hash,
    hash_password,
    hash_token,
    needs_rehash,
    new_token,
    parse_hash,
    verify_password,
)

SCRYPT = ScryptParams(n=2**10, r=8, p=1)  # an earlier server's scheme, cheaply


def test_a_hash_at_owasp_cost_is_argon2id_self_describing_and_verifies() -> None:
    encoded = hash_password("correct horse battery staple")  # the real cost, once
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert parse_hash(encoded) == OWASP == Argon2Params(time_cost=2, memory_cost=19 * 1024, parallelism=1)
    assert verify_password("correct horse battery staple", encoded)
    assert not verify_password("correct horse battery stapl", encoded)
    assert not needs_rehash(encoded)


def test_hashes_are_salted_and_keep_their_own_parameters() -> None:
    a, b = hash_password("same", CHEAP), hash_password("same", CHEAP)
    assert a != b and verify_password("same", a) and verify_password("same", b)
    assert parse_hash(a) == CHEAP  # verifies at the cost it was made with
    assert needs_rehash(a) and not needs_rehash(a, CHEAP)


def test_an_earlier_servers_scrypt_hash_still_verifies_and_needs_a_rehash() -> None:
    old = hash_password("pw", SCRYPT)
    assert old.startswith("scrypt$1024$8$1$") and parse_hash(old) == SCRYPT
    assert verify_password("pw", old) and not verify_password("pW", old)
    assert needs_rehash(old) and needs_rehash(old, CHEAP)


@pytest.mark.parametrize(
    "bad",
    [
        "", "bcrypt$1$2$3$4$5", "scrypt$1000$8$1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 86, "scrypt$1024$8$1$!!$AA", "scrypt$1024$8$1$AAAA$AAAA",
        "$argon2i$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43,  # argon2i, not argon2id
        "$argon2id$v=19$m=4,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43,  # under 8 KiB a lane
        "$argon2id$v=19$m=8,t=1,p=1$AAAA$" + "A" * 43,  # a salt too short
        "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43 + "\n",
    ],
)
def test_malformed_hashes_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_hash(bad)
    with pytest.raises(ValueError):
        verify_password("pw", bad)


def test_a_dummy_hash_costs_the_same_and_matches_nothing() -> None:
    real = hash_password("pw", CHEAP)
    dummy = dummy_hash(real)
    assert parse_hash(dummy) == parse_hash(real)
    assert not verify_password("pw", dummy) and not verify_password("", dummy)
    assert parse_hash(dummy_hash()) == OWASP
    assert parse_hash(dummy_hash(params=CHEAP)) == CHEAP
    # Salt and key lengths are copied too: the key length is the hash's output length.
    odd = hash_password("pw", Argon2Params(time_cost=1, memory_cost=16, parallelism=2, salt_bytes=24, key_bytes=48))
    assert parse_hash(dummy_hash(odd, CHEAP)) == Argon2Params(time_cost=1, memory_cost=16, parallelism=2, salt_bytes=24, key_bytes=48)
    assert parse_hash(dummy_hash(hash_password("pw", SCRYPT))) == SCRYPT


def test_five_failures_within_a_minute_block_a_key() -> None:
    now = [0.0]
    limiter = FailureLimiter(5, 60.0, clock=lambda: now[0])
    for _ in range(4):
        limiter.fail("bob")
    assert not limiter.blocked("bob")
    limiter.fail("bob")
    assert limiter.blocked("bob") and not limiter.blocked("alice")
    assert not limiter.blocked(("bob", "192.0.2.7"))  # the server's keys are (username, address) pairs
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
