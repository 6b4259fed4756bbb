"""Impossible commands: each is refused with its own reason and changes nothing.

Rep commands go through :func:`commands.execute`, the by-name dispatch both
backends use, so that what a WebSocket client can send is what is tested.
Customer entry points are called on the engine directly, as the start API
does.  The last test checks that every refusal reason is exercised here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from engine_helpers import Site, assert_refused, build_site, intake

from repconsole.core.commands import COMMANDS, execute
from repconsole.core.engine import CHAT_LIMIT, MAX_KEY_VALIDITY
from repconsole.core.errors import Reason
from repconsole.core.model import QueueRef


@dataclass
class Board:
    """A site with a session in every interesting state.

    waiting:   S waiting in Networking
    active:    owned by alice, bob participates; invitations out to Billing and Networking
    ended:     ended by bob
    held:      erin's, on hold
    full:      dave is at his maximum (1); another Hardware customer waits
    gus:       a Hardware rep who is not connected
    """

    site: Site
    waiting: str
    active: str
    ended: str
    held: str
    hw_waiting: str
    to_bill: str
    to_net: str
    key: str  # unused, valid


def make_board() -> Board:
    site = build_site(max_sessions={"dave": 1})
    e = site.engine
    e.add_rep("gus", "Gus Hale", ["hw"], connected=False)
    waiting = site.waiting_in_net("waiting")
    active = site.active("alice", name="active")
    e.accept_invitation("bob", e.share("alice", active.id, QueueRef.personal("bob")).id)
    to_bill = e.share("alice", active.id, QueueRef.team("bill"))
    to_net = e.share("alice", active.id, QueueRef.team("net"))
    ended = site.active("bob", name="ended")
    e.end("bob", ended.id)
    held = site.active("erin", name="held")
    e.hold("erin", held.id)
    site.active("dave", name="dave's")
    hw_waiting = e.start_with_issue("printer", intake("printer"))
    key = e.generate_key("alice", 600)
    return Board(site, waiting.id, active.id, ended.id, held.id, hw_waiting.id, to_bill.id, to_net.id, key.key)


@dataclass(frozen=True)
class Case:
    id: str
    rep: Any
    name: Any
    args: Callable[[Board], Any]
    reason: Reason


def c(case_id: str, rep: Any, name: Any, args: Callable[[Board], Any] | dict | None, reason: Reason) -> Case:
    return Case(case_id, rep, name, args if callable(args) else (lambda b, a=args: a), reason)


REP_CASES: list[Case] = [
    # --- the command itself
    c("unknown-command", "alice", "explode", {}, Reason.UNKNOWN_COMMAND),
    c("command-name-empty", "alice", "", {}, Reason.UNKNOWN_COMMAND),
    c("command-name-none", "alice", None, {}, Reason.UNKNOWN_COMMAND),
    c("command-name-list", "alice", ["accept"], {}, Reason.UNKNOWN_COMMAND),
    c("args-not-object", "alice", "accept", lambda b: [b.waiting], Reason.INVALID),
    c("args-missing", "alice", "accept", {}, Reason.INVALID),
    c("args-extra", "alice", "accept", lambda b: {"session": b.waiting, "force": True}, Reason.INVALID),
    c("args-extra-on-no-arg-command", "alice", "get_next", {"team": "net"}, Reason.INVALID),
    c("transfer-missing-target", "alice", "transfer", lambda b: {"session": b.active}, Reason.INVALID),
    # --- argument types
    c("session-int", "alice", "accept", {"session": 5}, Reason.INVALID),
    c("session-empty", "alice", "accept", {"session": ""}, Reason.INVALID),
    c("session-none", "alice", "end", {"session": None}, Reason.INVALID),
    c("invitation-list", "bob", "accept_invitation", {"invitation": ["I1"]}, Reason.INVALID),
    c("target-garbage", "alice", "transfer", lambda b: {"session": b.active, "target": "bogus"}, Reason.INVALID),
    c("target-no-id", "alice", "transfer", lambda b: {"session": b.active, "target": "team:"}, Reason.INVALID),
    c("target-bad-kind", "alice", "share", lambda b: {"session": b.active, "target": "galaxy:far"}, Reason.INVALID),
    c("target-int", "alice", "share", lambda b: {"session": b.active, "target": 5}, Reason.INVALID),
    c("stay-string", "alice", "transfer", lambda b: {"session": b.active, "target": "team:bill", "stay": "yes"}, Reason.INVALID),
    c("note-int", "alice", "transfer", lambda b: {"session": b.active, "target": "team:bill", "note": 3}, Reason.INVALID),
    c("note-too-long", "alice", "transfer", lambda b: {"session": b.active, "target": "team:bill", "note": "n" * (CHAT_LIMIT + 1)}, Reason.INVALID),
    c("text-none", "alice", "say", lambda b: {"session": b.active, "text": None}, Reason.INVALID),
    c("text-empty", "alice", "say", lambda b: {"session": b.active, "text": "  "}, Reason.INVALID),
    c("text-too-long", "alice", "say", lambda b: {"session": b.active, "text": "x" * (CHAT_LIMIT + 1)}, Reason.INVALID),
    c("reps-only-int", "alice", "say", lambda b: {"session": b.active, "text": "hi", "reps_only": 1}, Reason.INVALID),
    c("valid-for-string", "alice", "generate_key", {"valid_for": "600"}, Reason.INVALID),
    c("valid-for-bool", "alice", "generate_key", {"valid_for": True}, Reason.INVALID),
    c("valid-for-zero", "alice", "generate_key", {"valid_for": 0}, Reason.INVALID),
    c("valid-for-too-long", "alice", "generate_key", {"valid_for": MAX_KEY_VALIDITY * 2}, Reason.INVALID),
    c("status-unknown", "alice", "set_status", {"status": "sleeping"}, Reason.INVALID),
    c("status-int", "alice", "set_status", {"status": 3}, Reason.INVALID),
    c("upto-string", "alice", "team_read", {"team": "net", "upto": "2"}, Reason.INVALID),
    c("upto-bool", "alice", "team_read", {"team": "net", "upto": True}, Reason.INVALID),
    c("upto-float", "alice", "team_read", {"team": "net", "upto": 1.5}, Reason.INVALID),
    c("team-text-int", "alice", "team_say", {"team": "net", "text": 5}, Reason.INVALID),
    c("team-text-empty", "alice", "team_say", {"team": "net", "text": ""}, Reason.INVALID),
    c("external-key-none", "alice", "set_external_key", lambda b: {"session": b.active, "external_key": None}, Reason.INVALID),
    c("external-key-too-long", "alice", "set_external_key", lambda b: {"session": b.active, "external_key": "k" * 101}, Reason.INVALID),
    # --- impossible in this state
    c("transfer-to-self", "alice", "transfer", lambda b: {"session": b.active, "target": "rep:alice"}, Reason.INVALID),
    c("hold-twice", "erin", "hold", lambda b: {"session": b.held}, Reason.INVALID),
    c("owner-leaves", "alice", "leave", lambda b: {"session": b.active}, Reason.INVALID),
    c("unknown-session-accept", "alice", "accept", {"session": "S999"}, Reason.UNKNOWN_SESSION),
    c("unknown-session-transfer", "alice", "transfer", {"session": "S999", "target": "team:bill"}, Reason.UNKNOWN_SESSION),
    c("unknown-session-share", "alice", "share", {"session": "S999", "target": "team:bill"}, Reason.UNKNOWN_SESSION),
    c("unknown-session-hold", "alice", "hold", {"session": "S999"}, Reason.UNKNOWN_SESSION),
    c("unknown-session-end", "alice", "end", {"session": "S999"}, Reason.UNKNOWN_SESSION),
    c("unknown-session-leave", "alice", "leave", {"session": "S999"}, Reason.UNKNOWN_SESSION),
    c("unknown-session-say", "alice", "say", {"session": "S999", "text": "hi"}, Reason.UNKNOWN_SESSION),
    c("unknown-session-external-key", "alice", "set_external_key", {"session": "S999", "external_key": "k"}, Reason.UNKNOWN_SESSION),
    c("unknown-invitation", "bob", "accept_invitation", {"invitation": "I999"}, Reason.UNKNOWN_INVITATION),
    c("unknown-rep-accept", "zed", "accept", lambda b: {"session": b.waiting}, Reason.UNKNOWN_REP),
    c("unknown-rep-get-next", "zed", "get_next", {}, Reason.UNKNOWN_REP),
    c("unknown-rep-status", "zed", "set_status", {"status": "away"}, Reason.UNKNOWN_REP),
    c("unknown-rep-key", "zed", "generate_key", {"valid_for": 60}, Reason.UNKNOWN_REP),
    c("unknown-rep-team-say", "zed", "team_say", {"team": "net", "text": "hi"}, Reason.UNKNOWN_REP),
    c("unknown-rep-team-read", "zed", "team_read", {"team": "net"}, Reason.UNKNOWN_REP),
    c("rep-none", None, "accept", lambda b: {"session": b.waiting}, Reason.UNKNOWN_REP),
    c("rep-list", ["alice"], "team_say", {"team": "net", "text": "hi"}, Reason.UNKNOWN_REP),
    c("unknown-target-rep", "alice", "transfer", lambda b: {"session": b.active, "target": "rep:zed"}, Reason.UNKNOWN_REP),
    c("unknown-share-rep", "alice", "share", lambda b: {"session": b.active, "target": "rep:zed"}, Reason.UNKNOWN_REP),
    c("unknown-target-team", "alice", "transfer", lambda b: {"session": b.active, "target": "team:nope"}, Reason.UNKNOWN_TEAM),
    c("unknown-share-team", "alice", "share", lambda b: {"session": b.active, "target": "team:nope"}, Reason.UNKNOWN_TEAM),
    c("unknown-team-say", "alice", "team_say", {"team": "nope", "text": "hi"}, Reason.UNKNOWN_TEAM),
    c("unknown-team-read", "alice", "team_read", {"team": "nope"}, Reason.UNKNOWN_TEAM),
    c("non-member-accept", "carol", "accept", lambda b: {"session": b.waiting}, Reason.NOT_MEMBER),
    c("non-member-accept-held", "alice", "accept", lambda b: {"session": b.held}, Reason.NOT_MEMBER),
    c("non-member-invitation", "bob", "accept_invitation", lambda b: {"invitation": b.to_bill}, Reason.NOT_MEMBER),
    c("non-member-team-say", "alice", "team_say", {"team": "bill", "text": "hi"}, Reason.NOT_MEMBER),
    c("non-member-team-read", "alice", "team_read", {"team": "bill"}, Reason.NOT_MEMBER),
    c("non-owner-transfer", "bob", "transfer", lambda b: {"session": b.active, "target": "team:bill"}, Reason.NOT_OWNER),
    c("non-owner-share", "bob", "share", lambda b: {"session": b.active, "target": "team:hw"}, Reason.NOT_OWNER),
    c("non-owner-hold", "bob", "hold", lambda b: {"session": b.active}, Reason.NOT_OWNER),
    c("non-owner-end", "bob", "end", lambda b: {"session": b.active}, Reason.NOT_OWNER),
    c("outsider-transfer", "carol", "transfer", lambda b: {"session": b.active, "target": "team:bill"}, Reason.NOT_PARTICIPANT),
    c("outsider-end", "carol", "end", lambda b: {"session": b.active}, Reason.NOT_PARTICIPANT),
    c("outsider-say", "carol", "say", lambda b: {"session": b.active, "text": "hi"}, Reason.NOT_PARTICIPANT),
    c("outsider-leave", "carol", "leave", lambda b: {"session": b.active}, Reason.NOT_PARTICIPANT),
    c("outsider-external-key", "carol", "set_external_key", lambda b: {"session": b.active, "external_key": "k"}, Reason.NOT_PARTICIPANT),
    c("hold-a-waiting-session", "alice", "hold", lambda b: {"session": b.waiting}, Reason.NOT_PARTICIPANT),
    c("ended-accept", "bob", "accept", lambda b: {"session": b.ended}, Reason.SESSION_ENDED),
    c("ended-transfer", "bob", "transfer", lambda b: {"session": b.ended, "target": "team:bill"}, Reason.SESSION_ENDED),
    c("ended-share", "bob", "share", lambda b: {"session": b.ended, "target": "team:bill"}, Reason.SESSION_ENDED),
    c("ended-hold", "bob", "hold", lambda b: {"session": b.ended}, Reason.SESSION_ENDED),
    c("ended-end", "bob", "end", lambda b: {"session": b.ended}, Reason.SESSION_ENDED),
    c("ended-leave", "bob", "leave", lambda b: {"session": b.ended}, Reason.SESSION_ENDED),
    c("ended-say", "bob", "say", lambda b: {"session": b.ended, "text": "hi"}, Reason.SESSION_ENDED),
    c("ended-external-key", "bob", "set_external_key", lambda b: {"session": b.ended, "external_key": "k"}, Reason.SESSION_ENDED),
    c("already-taken", "erin", "accept", lambda b: {"session": b.active}, Reason.ALREADY_TAKEN),
    c("accept-own", "alice", "accept", lambda b: {"session": b.active}, Reason.ALREADY_IN_SESSION),
    c("share-with-participant", "alice", "share", lambda b: {"session": b.active, "target": "rep:bob"}, Reason.ALREADY_IN_SESSION),
    c("owner-takes-own-invitation", "alice", "accept_invitation", lambda b: {"invitation": b.to_net}, Reason.ALREADY_IN_SESSION),
    c("participant-takes-invitation", "bob", "accept_invitation", lambda b: {"invitation": b.to_net}, Reason.ALREADY_IN_SESSION),
    c("at-capacity-accept", "dave", "accept", lambda b: {"session": b.hw_waiting}, Reason.AT_CAPACITY),
    c("at-capacity-get-next", "dave", "get_next", {}, Reason.AT_CAPACITY),
    c("nothing-waiting", "carol", "get_next", {}, Reason.NOTHING_WAITING),
    c("transfer-to-offline-rep", "alice", "transfer", lambda b: {"session": b.active, "target": "rep:gus"}, Reason.REP_OFFLINE),
    c("share-with-offline-rep", "alice", "share", lambda b: {"session": b.active, "target": "rep:gus"}, Reason.REP_OFFLINE),
    # issue 14: Networking does not route, so nothing is offered to anyone
    c("accept-offer-never-made", "alice", "accept_offer", lambda b: {"session": b.waiting}, Reason.NO_OFFER),
    c("decline-offer-never-made", "alice", "decline_offer", lambda b: {"session": b.waiting}, Reason.NO_OFFER),
]


@pytest.mark.parametrize("case", REP_CASES, ids=lambda case: case.id)
def test_impossible_rep_command_is_refused_and_changes_nothing(case: Case) -> None:
    board = make_board()
    err = assert_refused(
        board.site.engine,
        case.reason,
        lambda: execute(board.site.engine, case.rep, case.name, case.args(board)),
        session_ids=board.site.session_ids,
    )
    assert err.to_dict()["reason"] == case.reason.value and err.detail


def test_already_taken_names_the_winner() -> None:
    board = make_board()
    err = assert_refused(board.site.engine, Reason.ALREADY_TAKEN, lambda: execute(board.site.engine, "erin", "accept", {"session": board.active}))
    assert err.data["by"] == "alice" and err.to_dict()["by"] == "alice"


CUSTOMER_CASES: list[Case] = [
    c("key-unknown", None, "start_with_key", lambda b: ("QQQQQQQ",), Reason.KEY_UNKNOWN),
    c("key-used", None, "start_with_key", lambda b: (_used_key(b),), Reason.KEY_USED),
    c("key-expired", None, "start_with_key", lambda b: (_expired_key(b),), Reason.KEY_EXPIRED),
    c("key-rate-limited", None, "start_with_key", lambda b: (_after_guessing(b),), Reason.KEY_RATE_LIMITED),
    c("button-unknown", None, "start_with_button", lambda b: ("btn-nope",), Reason.UNKNOWN_BUTTON),
    c("button-expired", None, "start_with_button", lambda b: (_expired_button(b),), Reason.BUTTON_EXPIRED),
    c("link-unknown", None, "start_browser", lambda b: ("link-nope",), Reason.UNKNOWN_LINK),
    c("link-revoked", None, "start_browser", lambda b: (_revoked_link(b),), Reason.LINK_REVOKED),
    c("link-expired", None, "start_browser", lambda b: (_expired_link(b),), Reason.LINK_EXPIRED),
    c("issue-unknown", None, "start_with_issue", lambda b: ("nope",), Reason.UNKNOWN_ISSUE),
    c("rep-offline", None, "start_with_rep", lambda b: ("gus",), Reason.REP_OFFLINE),
    c("rep-unknown", None, "start_with_rep", lambda b: ("zed",), Reason.UNKNOWN_REP),
    c("intake-not-intake", None, "start_with_issue", lambda b: ("vpn", {"customer_name": "x"}), Reason.INVALID),
    c("say-in-ended", None, "customer_say", lambda b: (b.ended, "hello?"), Reason.SESSION_ENDED),
    c("leave-ended", None, "customer_leave", lambda b: (b.ended,), Reason.SESSION_ENDED),
    c("leave-unknown", None, "customer_leave", lambda b: ("S999",), Reason.UNKNOWN_SESSION),
]


def _used_key(b: Board) -> str:
    key = b.site.engine.generate_key("alice", 600).key
    b.site.engine.start_with_key(key, intake(), source="setup")
    return key


def _expired_key(b: Board) -> str:
    key = b.site.engine.generate_key("alice", 10).key
    b.site.tick(10)
    return key


def _after_guessing(b: Board) -> str:
    for _ in range(b.site.engine.site.key_failures_per_minute):
        with contextlib.suppress(Exception):
            b.site.engine.start_with_key("QQQQQQQ", intake())
    return b.key  # a good key, but this caller is blocked


def _revoked_link(b: Board) -> str:
    b.site.engine.add_link("link-gone", "Withdrawn", QueueRef.team("net"), revoked=True)
    return "link-gone"


def _expired_link(b: Board) -> str:
    b.site.engine.add_link("link-old", "Last year's", QueueRef.team("net"), expires_at=b.site.clock.now)
    return "link-old"


def _expired_button(b: Board) -> str:
    b.site.clock.now = b.site.engine.buttons["btn-promo"].expires_at or 0.0
    return "btn-promo"


@pytest.mark.parametrize("case", CUSTOMER_CASES, ids=lambda case: case.id)
def test_impossible_customer_request_is_refused_and_changes_nothing(case: Case) -> None:
    board = make_board()
    args = case.args(board)  # may set the scene (use a key, let one expire)
    method = getattr(board.site.engine, case.name)
    if case.name.startswith("start_") and len(args) == 1:
        args = (*args, intake())
    assert_refused(board.site.engine, case.reason, lambda: method(*args), session_ids=board.site.session_ids)


def test_every_refusal_reason_is_exercised() -> None:
    covered = {case.reason for case in REP_CASES + CUSTOMER_CASES}
    # NOT_WAITING is declared for the wire protocol but no command raises it today;
    # NOT_BROWSER is the co-browsing relay's (tests/test_cobrowse_server.py), not the engine's;
    # NOT_LEAD and UNKNOWN_SNIPPET the snippet book's (tests/test_server_snippets.py).
    assert covered == set(Reason) - {Reason.NOT_WAITING, Reason.NOT_BROWSER, Reason.NOT_LEAD, Reason.UNKNOWN_SNIPPET}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_refuses_missing_and_unexpected_arguments(name: str) -> None:
    board = make_board()
    e = board.site.engine
    if COMMANDS[name].required:
        assert_refused(e, Reason.INVALID, lambda: execute(e, "alice", name, {}))
    full = dict.fromkeys(COMMANDS[name].required, "x") | {"surprise": 1}
    assert_refused(e, Reason.INVALID, lambda: execute(e, "alice", name, full))
