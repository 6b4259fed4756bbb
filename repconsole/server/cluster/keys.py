"""The Redis keys of one organisation.

Every key carries the organisation in a hash tag (``{org}``), so all of
them live in one hash slot: the log's Lua scripts touch several keys
atomically, which a Redis Cluster allows only within one slot.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

__all__ = ["OrgKeys", "process_id"]

PREFIX = "repconsole"


def process_id() -> str:
    """A new id for this process in the cluster (forwarded requests' origin, the lease owner, the relay's
    node): ``<hostname>-<pid>-<16 random hex digits>``.  Hostname and pid alone repeat (containers with a
    fixed hostname all run as pid 1; a process restarted may get its pid again): then replies matched by
    number would go to the wrong process and presence would overwrite another's.  No spaces (the lease
    value is ``"<owner> <epoch>"``)."""
    host = socket.gethostname().replace(" ", "_") or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(8)}"


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
