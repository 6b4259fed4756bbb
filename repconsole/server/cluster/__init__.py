"""Several server processes serving one organisation, on Redis (issue 15).

Nothing here is imported unless the server's configuration has a
``[cluster]`` section: a single-process install needs neither Redis nor
``redis-py`` (``pip install "repconsole[server,cluster]"`` brings them).

- :mod:`.keys`: the Redis keys of one organisation (one hash slot).
- :mod:`.lease`: who leads the organisation, with its fencing epoch.
- :mod:`.log`: the ordered log (a Redis Stream), fenced appends, tails,
  the snapshot and trimming.
- :mod:`.entry`: what one log entry carries (one engine step).
- :mod:`.records`: what every process must know besides the engine (logins, answers, customer tokens).
- :mod:`.follower`: an engine copy, a fan-out and a store kept in step with the log.
- :mod:`.node`: the leader's lease and log on the runtime's loop.
- :mod:`.member`: this process's role: join, lead or follow, take over.
- :mod:`.forward`: followers' requests to the leader and its replies (Redis lists).
- :mod:`.desk`: the server's side of forwarding (login, resume, commands, logout).
- :mod:`.notices`: typing notices between processes (Redis pub/sub).

docs/architecture.md ("Cluster") has the picture and the failure cases.
"""
