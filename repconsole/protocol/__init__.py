"""The wire protocol, defined once: what a console or a customer page may send, and what it gets back.

Qt-free and I/O-free: msgspec Structs and enums, nothing else.  The queue
server, the console's WebSocket client, the simulator, the benchmarks and
the tests all build and read messages through this package; none of them
writes a ``"type"`` by hand.

=================  ==========================================================
module             what it defines
=================  ==========================================================
``vocabulary``     every enum and limit: message types, event kinds, close
                   codes, error reasons, origins, states; the protocol version
``views``          the nouns as the wire carries them: ``SessionView`` (the
                   console's typed session), ``LineView``, ``RepView``,
                   ``TeamView``, ``KeyView``, ``SnapshotData``, ``Intake``
``events``         the events of an ``events`` frame, one Struct per kind
``commands``       every rep command: its arguments and its result
``cobrowse``       the customer's live page: the recorder endpoint
                   ``/cobrowse`` and what reps get of it on ``/rep``
``snippets``       canned messages (issue 14): a team's snippets, the
                   ``snippets`` message and the ``snippet_*`` commands
``messages``       every message on ``/rep``, ``/customer`` and
                   ``/cobrowse``, both ways; ``parse_*``, ``encode``,
                   ``ProtocolError``
``schema``         docs/protocol.schema.json, generated from the above
=================  ==========================================================

docs/protocol.md is the human reference; a test checks that it names every
message type, event kind, command and reason defined here.
"""

from __future__ import annotations

from repconsole.protocol.cobrowse import *  # noqa: F403
from repconsole.protocol.cobrowse import __all__ as _cobrowse
from repconsole.protocol.commands import *  # noqa: F403
from repconsole.protocol.commands import __all__ as _commands
from repconsole.protocol.events import *  # noqa: F403
from repconsole.protocol.events import __all__ as _events
from repconsole.protocol.messages import *  # noqa: F403
from repconsole.protocol.messages import __all__ as _messages
from repconsole.protocol.snippets import *  # noqa: F403
from repconsole.protocol.snippets import __all__ as _snippets
from repconsole.protocol.views import *  # noqa: F403
from repconsole.protocol.views import __all__ as _views
from repconsole.protocol.vocabulary import *  # noqa: F403
from repconsole.protocol.vocabulary import __all__ as _vocabulary

__all__ = [*_vocabulary, *_views, *_events, *_commands, *_cobrowse, *_snippets, *_messages]
