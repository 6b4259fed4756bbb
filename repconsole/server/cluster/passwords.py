"""The organisation's password hashes, in Redis: one for every process of a cluster.

On one process a hash set with ``repconsole-server passwd`` (or made by a
re-hash at login) lives in its data directory and wins over the
configuration's ``password_hash``.  In a cluster each process has a data
directory of its own, so the organisation's hashes live in one Redis hash,
``repconsole:{org}:passwords`` (rep id -> hash), and win over the
configuration's there:

- ``passwd`` (the CLI has the configuration, so the Redis URL) sets the
  field (:func:`set_hash`): the next login on any process checks it; no
  process needs to run, none needs to be told.
- A re-hash at login (an earlier scrypt hash, or another cost, that just
  verified) replaces the field only if it still holds the hash that was
  verified (:meth:`ClusterPasswords.replace`, one Lua script: compare and
  set).  A process that verified an old hash therefore never overwrites a
  newer one set meanwhile by ``passwd`` or by another process's re-hash:
  Redis orders the writes, and the stale one finds the field changed.
- At start, a hash that a process's own data directory has and Redis does
  not (``passwd`` run against each data directory, as before) is copied
  (``HSETNX``: the first process to start wins, Redis's is never replaced).

Hashes only, never a password: what a data directory holds, Redis holds.
Not the log: ``passwd`` runs beside the servers and may run while none is
up (the log is written by the leader alone), and a hash is one value per
rep that the latest write decides, which a Redis hash keeps without
snapshots or trimming.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio

from repconsole.server.cluster.keys import OrgKeys
from repconsole.server.store import Store

__all__ = ["ClusterPasswords", "copy_local_hashes", "set_hash"]

# KEYS[1] the hash; ARGV[1] rep, ARGV[2] the hash verified ("" : the field was absent), ARGV[3] the new one.
_REPLACE = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (current == false and ARGV[2] == '') or current == ARGV[2] then
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
    return 1
end
return 0
"""


class ClusterPasswords:
    """What :class:`~repconsole.server.passwords.PasswordDesk` reads and re-hashes into, in a cluster."""

    def __init__(self, client: redis.asyncio.Redis, keys: OrgKeys) -> None:
        self.client = client
        self.key = keys.passwords
        self._replace = client.register_script(_REPLACE)

    async def get(self, username: str) -> str | None:
        """The organisation's hash for ``username`` (None: none set: the configuration's counts).  Raises on a Redis error."""
        raw: Any = await self.client.hget(self.key, username)
        return bytes(raw).decode() if raw is not None else None

    async def replace(self, username: str, verified: str | None, encoded: str) -> bool:
        """Set ``encoded`` if the field still holds ``verified`` (None: still has none).  False: it changed meanwhile."""
        done: Any = await self._replace(keys=[self.key], args=[username, verified or "", encoded])
        return bool(done)


def set_hash(url: str, keys: OrgKeys, username: str, encoded: str) -> None:
    """``passwd`` in a cluster: the rep's hash for every process (raises redis.RedisError)."""
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.hset(keys.passwords, username, encoded)
    finally:
        client.close()


def copy_local_hashes(client: redis.Redis, keys: OrgKeys, store: Store) -> list[str]:
    """At start: this data directory's hashes that Redis has none of, copied there.  Returns their reps."""
    copied = []
    for username in sorted(store.usernames_with_passwords()):
        encoded = store.password_hash(username)
        if encoded is not None and client.hsetnx(keys.passwords, username, encoded):
            copied.append(username)
    return copied
