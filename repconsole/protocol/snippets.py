"""Canned messages (issue 14): a team's snippets on the wire, and the commands that change them.

A rep's *team* snippets live on the server (personal ones stay in the
console's settings and never travel).  They go beside the feed, like typing
and co-browsing, not as engine events: they are not queue state, take no
``seq`` and are not replayed.  Instead the server sends the whole set:

* :class:`Snippets` right after a sign-in's snapshot (or replay), and again
  to every connected member of a team whenever one of its snippets changes
  (a lead's command below); each time it is the rep's complete set, so a
  console replaces what it had and never merges;
* ``lead_of`` names the rep's teams whose snippets the rep may change.

Commands (``{"type": "command", "name": ...}`` on ``/rep``; answered by the
snippet book, not the engine, see :data:`SNIPPET_COMMANDS`):
``snippet_add`` (team, name, text) → :class:`SnippetResult`,
``snippet_edit`` (id, name, text) → :class:`SnippetResult`,
``snippet_delete`` (id) → ``{}``.  A rep who is not a lead of the team is
refused with ``not_lead``; a snippet that is gone, or one of the site file
(``config: true``, changed only there), with ``unknown_snippet``.

Sent only to consoles of protocol version 4 on.
"""

from __future__ import annotations

import enum
from typing import Annotated, Final

import msgspec

from repconsole.protocol.cobrowse import CobrowseSpec, NoResult
from repconsole.protocol.commands import Args, CommandResult
from repconsole.protocol.vocabulary import ID_LIMIT, MessageType

__all__ = [
    "SNIPPET_COMMANDS",
    "SNIPPET_NAME_LIMIT",
    "SNIPPET_TEXT_LIMIT",
    "SnippetAddArgs",
    "SnippetCommand",
    "SnippetDeleteArgs",
    "SnippetEditArgs",
    "SnippetName",
    "SnippetResult",
    "SnippetView",
    "Snippets",
]

# A snippet's name is what the rep types after "/" (short); its text is a chat line (the chat's limit).
SNIPPET_NAME_LIMIT: Final = 60
SNIPPET_TEXT_LIMIT: Final = 4000
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_LIMIT)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=SNIPPET_NAME_LIMIT, pattern=r"\S")]
_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=SNIPPET_TEXT_LIMIT, pattern=r"\S")]


class SnippetName(enum.StrEnum):
    """The snippet commands a rep sends on ``/rep``."""

    ADD = "snippet_add"
    EDIT = "snippet_edit"
    DELETE = "snippet_delete"


class SnippetView(msgspec.Struct, frozen=True, kw_only=True):
    """One team snippet.  ``config``: set in the site file (read-only in the console)."""

    id: _Id
    team: _Id
    name: _Name
    text: _Text
    config: bool = False


class SnippetAddArgs(Args, frozen=True):
    """``snippet_add``: a new snippet of ``team`` (the rep must lead it)."""

    team: _Id
    name: _Name
    text: _Text


class SnippetEditArgs(Args, frozen=True):
    """``snippet_edit``: new name and text for snippet ``id`` (the rep must lead its team)."""

    id: _Id
    name: _Name
    text: _Text


class SnippetDeleteArgs(Args, frozen=True):
    """``snippet_delete``: forget snippet ``id`` (the rep must lead its team)."""

    id: _Id


class SnippetResult(CommandResult, frozen=True):
    """The snippet as the server stored it."""

    snippet: SnippetView


class Snippets(msgspec.Struct, frozen=True, tag_field="type", tag=MessageType.SNIPPETS.value):
    """The rep's team snippets, all of them, and the teams whose snippets the rep may change."""

    snippets: list[SnippetView]
    lead_of: list[str]


SNIPPET_COMMANDS: Final[dict[str, CobrowseSpec]] = {
    spec.name.value: spec
    for spec in (
        CobrowseSpec(SnippetName.ADD, SnippetAddArgs, SnippetResult),
        CobrowseSpec(SnippetName.EDIT, SnippetEditArgs, SnippetResult),
        CobrowseSpec(SnippetName.DELETE, SnippetDeleteArgs, NoResult),
    )
}

SnippetCommand = SnippetAddArgs | SnippetEditArgs | SnippetDeleteArgs
