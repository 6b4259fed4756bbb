"""The simulator's team snippets (issue 14): what a server's snippet book does, in process.

The rep (``me``) leads Networking, so ``make run`` shows team snippets the
rep may change and others (Accounts, Software) the rep may only use.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import msgspec

from repconsole.core.errors import CommandError, Reason
from repconsole.protocol import (
    SNIPPET_COMMANDS,
    CommandResult,
    NoResult,
    SnippetAddArgs,
    SnippetEditArgs,
    SnippetResult,
    Snippets,
    SnippetView,
)

__all__ = ["LEADS", "TEAM_SNIPPETS", "SimSnippets"]

# The simulated site file's snippets: team -> (name, text).
TEAM_SNIPPETS: dict[str, list[tuple[str, str]]] = {
    "network": [
        ("vpn-restart", "Hi {customer}, please quit the VPN client and start it again; I'll stay right here."),
        ("router", "Could you unplug your router for 30 seconds, {customer}, then plug it back in?"),
    ],
    "accounts": [("invoice", "I can see your account, {customer}. Your reference for this chat is {key}.")],
    "software": [("reinstall", "Let's reinstall the app together, {customer}. I'm {rep}, I'll guide you step by step.")],
}
# The teams the simulated rep leads.
LEADS = frozenset({"network"})


class SimSnippets:
    """The team snippets of the simulated rep's teams (``teams()``); changes go to ``deliver``."""

    def __init__(self, teams: Callable[[], list[str]], deliver: Callable[[Snippets], None]) -> None:
        self._teams = teams
        self._deliver = deliver
        self._ids = itertools.count(1)
        self._all: dict[str, SnippetView] = {}
        for team, items in TEAM_SNIPPETS.items():
            for n, (name, text) in enumerate(items, 1):
                # Networking's second one stands for one a lead made in the console: its lead (the rep) may change it.
                config = not (team in LEADS and n == 2)
                sid = f"cfg-{team}-{n}" if config else f"sn-{team}-{n}"
                self._all[sid] = SnippetView(id=sid, team=team, name=name, text=text, config=config)

    def current(self) -> Snippets:
        teams = self._teams()
        return Snippets([s for s in self._all.values() if s.team in teams], [t for t in teams if t in LEADS])

    def command(self, command: str, raw: dict[str, Any]) -> CommandResult:
        spec = SNIPPET_COMMANDS[command]
        try:
            args: Any = msgspec.convert(raw, type=spec.args, strict=True)
        except msgspec.ValidationError as exc:
            raise CommandError(Reason.INVALID, str(exc), command=command) from None
        if isinstance(args, SnippetAddArgs):
            self._lead(args.team)
            s = SnippetView(id=f"sn-{next(self._ids)}", team=args.team, name=args.name, text=args.text)
        else:
            old = self._all.get(args.id)
            if old is None or old.config:
                raise CommandError(Reason.UNKNOWN_SNIPPET, id=args.id)
            self._lead(old.team)
            s = SnippetView(id=old.id, team=old.team, name=args.name, text=args.text) if isinstance(args, SnippetEditArgs) else old
        result: CommandResult
        if isinstance(args, SnippetAddArgs | SnippetEditArgs):
            self._all[s.id] = s
            result = SnippetResult(s)
        else:
            del self._all[s.id]
            result = NoResult()
        self._deliver(self.current())
        return result

    def _lead(self, team: str) -> None:
        if team not in LEADS or team not in self._teams():
            raise CommandError(Reason.NOT_LEAD, team=team)
