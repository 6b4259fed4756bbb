"""Canned messages (issue 14): personal and team snippets, and their placeholders.  Qt-free.

A rep's snippets are their **personal** ones (kept in the console's settings,
:attr:`repconsole.settings.Settings.snippets`) followed by their teams'
(kept by the server, :class:`~repconsole.protocol.Snippets`).  Typing ``/``
in a session's chat input lists them; the one chosen is inserted with its
placeholders filled in (:func:`fill`):

``{customer}``  the customer's name
``{rep}``       the rep's display name
``{key}``       the session key the customer came with, else the session's id

A placeholder this console does not know (``{ticket}``) is left as it is
written, so the rep sees it, and :func:`fill` says which; ``{{`` and ``}}``
stand for literal braces.

The personal snippet named :data:`NUDGE_NAME` is what "Still there?"
(Alt+I) sends; a rep who deletes it gets :data:`NUDGE_TEXT` again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from repconsole.protocol import SNIPPET_NAME_LIMIT, SNIPPET_TEXT_LIMIT, Snippets

__all__ = [
    "NUDGE_NAME",
    "NUDGE_TEXT",
    "PERSONAL",
    "PLACEHOLDERS",
    "Snippet",
    "check_personal",
    "default_personal",
    "fill",
    "matching",
    "merged",
    "nudge_text",
]

PERSONAL = ""  # the ``team`` of a personal snippet
NUDGE_NAME = "still-there"
# What "Still there?" sends until the rep edits its snippet: a normal chat line, which the customer sees.
NUDGE_TEXT = "Are you still there? Let me know if you need anything else, I'm happy to help."
PLACEHOLDERS = {
    "customer": "the customer's name",
    "rep": "your display name",
    "key": "the session key (else the session's id)",
}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_MAX_PERSONAL = 500


@dataclass(frozen=True, slots=True)
class Snippet:
    """One snippet as the console lists it.

    ``team``: :data:`PERSONAL` or the team's id; ``id``: the server's id of a
    team snippet ("" for a personal one); ``editable``: the rep may change
    it here; ``why_not``: the reason when not (shown in the manage dialog).
    """

    name: str
    text: str
    team: str = PERSONAL
    team_name: str = ""
    id: str = ""
    editable: bool = True
    why_not: str = ""

    @property
    def personal(self) -> bool:
        return self.team == PERSONAL

    @property
    def where(self) -> str:
        """"Personal" or the team's name, as lists show it."""
        return "Personal" if self.personal else (self.team_name or self.team)


def fill(text: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with its placeholders replaced by ``values``; and the unknown ones, left as written, in order."""
    unknown: list[str] = []

    def one(m: re.Match[str]) -> str:
        whole = m.group(0)
        if whole in ("{{", "}}"):
            return whole[0]
        name = m.group(1).strip()
        if name in values:
            return values[name]
        if whole not in unknown:
            unknown.append(whole)
        return whole

    return _PLACEHOLDER.sub(one, text), unknown


def default_personal() -> list[dict[str, str]]:
    """A new rep's personal snippets: the "Still there?" check-in."""
    return [{"name": NUDGE_NAME, "text": NUDGE_TEXT}]


def check_personal(value: Any) -> list[dict[str, str]]:
    """The personal snippets of a settings file, or ValueError saying what is wrong."""
    if not isinstance(value, list):
        raise ValueError("snippets is not a list")
    if len(value) > _MAX_PERSONAL:
        raise ValueError(f"more than {_MAX_PERSONAL} snippets")
    out: list[dict[str, str]] = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"name", "text"}:
            raise ValueError("a snippet is not {name, text}")
        name, text = item["name"], item["text"]
        if not isinstance(name, str) or not isinstance(text, str) or not name.strip() or not text.strip():
            raise ValueError("a snippet's name or text is empty")
        if len(name) > SNIPPET_NAME_LIMIT or len(text) > SNIPPET_TEXT_LIMIT:
            raise ValueError(f"the snippet {name[:40]!r} is too long")
        out.append({"name": name, "text": text})
    return out


def merged(personal: list[dict[str, str]], team: Snippets | None, team_names: dict[str, str]) -> list[Snippet]:
    """Every snippet the rep may insert: personal ones first, then each team's."""
    out = [Snippet(p["name"], p["text"]) for p in personal]
    if team is not None:
        leads = set(team.lead_of)
        for s in team.snippets:
            name = team_names.get(s.team, s.team)
            if s.config:
                editable, why = False, "Set in the server's site file: only an administrator changes it there."
            elif s.team in leads:
                editable, why = True, ""
            else:
                editable, why = False, f"Only a lead of {name} can change the team's snippets."
            out.append(Snippet(s.name, s.text, s.team, name, s.id, editable, why))
    return out


def matching(snippets: list[Snippet], query: str) -> list[Snippet]:
    """The snippets whose name starts with ``query``, then those whose name or text contains it (case-insensitive)."""
    q = query.strip().casefold()
    if not q:
        return list(snippets)
    first = [s for s in snippets if s.name.casefold().startswith(q)]
    rest = [s for s in snippets if s not in first and (q in s.name.casefold() or q in s.text.casefold())]
    return first + rest


def nudge_text(personal: list[dict[str, str]]) -> str:
    """What "Still there?" sends: the personal snippet :data:`NUDGE_NAME`, else :data:`NUDGE_TEXT`."""
    return next((p["text"] for p in personal if p["name"] == NUDGE_NAME), NUDGE_TEXT)
