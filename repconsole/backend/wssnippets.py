"""The snippet frames of :class:`~repconsole.backend.websocket.WebSocketBackend` (issue 14).

The server sends the rep's whole set of team snippets (``snippets``, beside
the feed: docs/protocol.md, Canned messages) after each sign-in's snapshot
and whenever a lead changes one; it goes to the snippet listeners.  The
``snippet_*`` commands are ordinary commands whose results the snippet
command table types.  Kept out of websocket.py, which is at its size limit.
"""

from __future__ import annotations

from repconsole.backend.wstyping import TypingFrames
from repconsole.protocol import COBROWSE_COMMANDS, COMMANDS, SNIPPET_COMMANDS, CommandResult, RepReply, Snippets

__all__ = ["SnippetFrames", "result_type"]


def result_type(command: str) -> type[CommandResult] | None:
    """The result Struct of ``command`` (an engine, co-browsing or snippet command), or None."""
    spec = COMMANDS.get(command) or COBROWSE_COMMANDS.get(command) or SNIPPET_COMMANDS.get(command)
    return spec.result if spec is not None else None


class SnippetFrames(TypingFrames):
    """What :class:`WebSocketBackend` adds for team snippets (after typing, in its bases)."""

    def _on_other(self, message: RepReply) -> None:
        if isinstance(message, Snippets):
            self._deliver_snippets(message)
        else:
            super()._on_other(message)
