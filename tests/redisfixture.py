"""A real ``redis-server`` of the test's own: a free port, a temp dir, AOF on.

The cluster tests (and bench/bench_redis_log.py) run against Debian's
``redis-server`` 7.0, never a fake: fencing, Lua atomicity and AOF replay
are what they test.  ``.ci/run`` installs it, so a missing binary fails the
test instead of skipping it.

Usage::

    from redisfixture import RedisServer, redis_server  # noqa: F401  (the fixture)

    def test_x(redis_server: RedisServer) -> None:
        client = redis.Redis.from_url(redis_server.url)

:class:`RedisServer` (bench/redisserver.py) can also be stopped, killed and started again on the
same port and directory (an AOF restart keeps what was confirmed).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.redisserver import RedisServer

__all__ = ["RedisServer", "redis_server"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started redis-server of this test's own, stopped after it."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()
