"""The Redis keys of one organisation.

Every key carries the organisation in a hash tag (``{org}``), so all of
them live in one hash slot: the log's Lua scripts touch several keys
atomically, which a Redis Cluster allows only within one slot.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OrgKeys"]

PREFIX = "repconsole"


@dataclass(frozen=True, slots=True)
class OrgKeys:
    """Attributes:
    lease: the leader's lease, ``"<owner> <epoch>"``, with a TTL.
    epoch: the fencing counter, raised (INCR) on every takeover; never expires.
    head: the seq of the last event in the log (0: none yet); the next append must start after it.
    log: the Stream of entries, entry id ``<last seq of the entry>-0``.
    snapshot: a hash: ``seq``, the seq the latest snapshot of the engine state is at
        (trimming never goes past it), and ``data``, the snapshot itself.
    passwords: a hash, rep id -> password hash (argon2id or an earlier scrypt one), set by
        ``repconsole-server passwd`` and by a re-hash at login (cluster/passwords.py).
    """

    lease: str
    epoch: str
    head: str
    log: str
    snapshot: str
    passwords: str

    @classmethod
    def of(cls, org: str) -> OrgKeys:
        if not org or any(c in org for c in "{} \r\n"):
            raise ValueError(f"an organisation name for Redis keys must be non-empty, without braces or spaces: {org!r}")
        base = f"{PREFIX}:{{{org}}}"
        return cls(f"{base}:lease", f"{base}:epoch", f"{base}:head", f"{base}:log", f"{base}:snapshot", f"{base}:passwords")

    def all(self) -> list[str]:
        return [self.lease, self.epoch, self.head, self.log, self.snapshot, self.passwords]
