"""Review rev15: the forwarding lists (cluster/forward.py) against a real redis-server."""

from __future__ import annotations

import asyncio

import redis
from redisfixture import RedisServer, redis_server  # noqa: F401  (the fixture)

from repconsole.server.cluster.forward import CommandServer, Forwarder, Reply, Request, async_client, commands_key
from repconsole.server.cluster.keys import OrgKeys

KEYS = OrgKeys.of("acme")


def test_one_undecodable_request_does_not_stop_the_leader_serving_forwards(redis_server: RedisServer) -> None:
    """A request the leader cannot decode (a follower of another version during a rolling upgrade, a
    stray RPUSH) must be dropped, not end the CommandServer's task: today the task dies silently and
    every later forward of every follower times out while this process goes on leading."""

    async def main() -> Reply:
        client = async_client(redis_server.url)
        server = CommandServer(client, KEYS, lambda request: Reply(request.fid, body=b"ran " + request.frame))
        forwarder = Forwarder(client, KEYS, "b")
        redis.Redis.from_url(redis_server.url).rpush(commands_key(KEYS), b"\xc1 not a request")
        server.start()
        forwarder.start()
        try:
            return await forwarder.call(Request("command", "", 0, 0.0, frame=b"x"), timeout=3.0)
        finally:
            server.stop()
            forwarder.stop()
            await client.aclose()

    assert asyncio.run(main()).body == b"ran x"
