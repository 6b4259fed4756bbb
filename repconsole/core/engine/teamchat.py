"""Team chat: one chat per team that all its members see, with each member's read marker."""

from __future__ import annotations

from dataclasses import dataclass, field

from repconsole.core.clock import Clock
from repconsole.core.engine.chat import chat_text
from repconsole.core.engine.directory import Directory
from repconsole.core.engine.events import EventBus
from repconsole.core.errors import CommandError, Reason
from repconsole.core.model import ChatLine
from repconsole.protocol.events import TeamChatData, TeamReadData

__all__ = ["TEAM_CHAT_HISTORY", "TeamChat", "TeamChats"]

TEAM_CHAT_HISTORY = 200


@dataclass(slots=True)
class TeamChat:
    """One team's chat.

    Attributes:
        lines: the last :data:`TEAM_CHAT_HISTORY` lines, oldest first.
        count: lines ever written (the number of the last one).
        last_read: rep id -> number of the last line that rep has read.
    """

    lines: list[ChatLine] = field(default_factory=list)
    count: int = 0
    last_read: dict[str, int] = field(default_factory=dict)

    def copy(self) -> TeamChat:
        return TeamChat(list(self.lines), self.count, dict(self.last_read))


class TeamChats:
    """Every team's chat, by team id."""

    def __init__(self, clock: Clock, bus: EventBus, directory: Directory) -> None:
        self._clock = clock
        self._bus = bus
        self._dir = directory
        self.chats: dict[str, TeamChat] = {}

    def add_team(self, team_id: str) -> None:
        self.chats[team_id] = TeamChat()

    def say(self, rep_id: str, team_id: str, text: str) -> ChatLine:
        self._dir.rep(rep_id)
        team = self._dir.team(team_id)
        if rep_id not in team.members:
            raise CommandError(Reason.NOT_MEMBER, team=team_id)
        # Check the text before counting the line: a refusal changes nothing.
        text = chat_text(text)
        chat = self.chats[team_id]
        chat.count += 1
        line = ChatLine(chat.count, self._clock(), rep_id, text)
        chat.lines.append(line)
        del chat.lines[:-TEAM_CHAT_HISTORY]
        # The author has read their own line.
        chat.last_read[rep_id] = chat.count
        self._bus.emit(TeamChatData(team_id, line.view()), frozenset(team.members))
        return line

    def read(self, rep_id: str, team_id: str, upto: int | None = None) -> int:
        """Mark a team's chat read up to line ``upto`` (default: all of it)."""
        self._dir.rep(rep_id)
        team = self._dir.team(team_id)
        if rep_id not in team.members:
            raise CommandError(Reason.NOT_MEMBER, team=team_id)
        chat = self.chats[team_id]
        n = chat.count if upto is None else max(0, min(int(upto), chat.count))
        if n > chat.last_read.get(rep_id, 0):
            chat.last_read[rep_id] = n
            self._bus.emit(TeamReadData(team_id, n), frozenset((rep_id,)))
        return chat.last_read.get(rep_id, 0)

    def restore(self, team_id: str, chat: TeamChat) -> None:
        """Take a team's chat from saved state (only its last :data:`TEAM_CHAT_HISTORY` lines are kept)."""
        self.chats[team_id] = TeamChat(chat.lines[-TEAM_CHAT_HISTORY:], chat.count, dict(chat.last_read))
