"""In a session: transfer, share, hold, end, leave, chat; and team chat."""

from __future__ import annotations

import pytest
from engine_helpers import (
    Site,
    assert_refused,
    intake,
    site,  # noqa: F401  (pytest fixture)
    timeline_kinds,
)
from msgspec import UNSET

from repconsole.core.commands import execute
from repconsole.core.engine import CHAT_LIMIT, TEAM_CHAT_HISTORY
from repconsole.core.errors import Reason
from repconsole.core.model import CUSTOMER, Origin, QueueRef, SessionState, StepKind, Visibility
from repconsole.core.state import Arrival, RowKind
from repconsole.protocol import (
    EventKind,
    GoneReason,
    SessionData,
    SessionGoneData,
    SessionResult,
    SessionView,
)

# ----------------------------------------------------------------- transfer


def test_transfer_to_a_rep_pins_the_note_and_logs_it_for_reps_only(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    carol = site.console("carol")
    e.transfer("alice", s.id, QueueRef.personal("carol"), "Needs a refund, ID verified")
    assert (s.state, s.owner, s.queue, s.transfer_note) == (SessionState.WAITING, None, QueueRef.personal("carol"), "Needs a refund, ID verified")
    step = s.timeline[-1]
    assert (step.kind, step.by, step.queue, step.note) == (StepKind.TRANSFERRED, "alice", QueueRef.personal("carol"), "Needs a refund, ID verified")
    line, told = s.chat[-2:]
    assert line.author is None and line.visibility is Visibility.REPS
    assert "Carol Diaz" in line.text and "Needs a refund, ID verified" in line.text
    # The customer is told where they go, never the note.
    assert (told.author, told.visibility, told.text) == (None, Visibility.ALL, "You are being transferred to Carol Diaz.")
    assert e.involved("alice") == set()
    # The receiver is alerted, and the note travels with the row.
    changes = carol.sync()
    assert [(why, d.id) for why, d in changes.arrived] == [(Arrival.TRANSFER, s.id)]
    assert carol.state.rows["rep:carol"][s.id].session.transfer_note == "Needs a refund, ID verified"
    # Accepting keeps the note pinned.
    e.accept("carol", s.id)
    assert s.transfer_note == "Needs a refund, ID verified"


def test_transfer_to_a_team_moves_it_out_of_sight_of_the_old_team(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    bob, carol = site.console("bob"), site.console("carol")
    e.transfer("alice", s.id, QueueRef.team("bill"), "billing question")
    assert s.queue == QueueRef.team("bill") and e.waiting_in(QueueRef.team("bill")) == [s]
    assert s.id in carol.rows("team:bill")
    # Bob (Networking) could not see it while Alice had it, and still can't.
    bob.sync()
    assert s.id not in bob.state.sessions


def test_transfer_and_stay_keeps_the_old_owner_as_participant(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    alice = site.console("alice")
    e.transfer("alice", s.id, QueueRef.team("bill"), "stay with them", stay=True)
    assert list(s.participants) == ["alice"] and s.owner is None
    e.accept("carol", s.id)
    assert (s.owner, list(s.participants)) == ("carol", ["alice"])
    e.say("carol", s.id, "Hello from billing")
    changes = alice.sync()
    assert EventKind.SESSION_GONE not in alice.kinds()
    assert changes.chat[-1][1].text == "Hello from billing"
    assert s.id in alice.state.rows["rep:alice"] and alice.state.rows["rep:alice"][s.id].kind is RowKind.MINE


def test_transfer_to_a_participant_makes_them_the_owner_at_once_with_the_note(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.accept_invitation("bob", e.share("alice", s.id, QueueRef.personal("bob")).id)
    alice, bob = site.console("alice"), site.console("bob")
    chat_before = len(s.chat)
    e.transfer("alice", s.id, QueueRef.personal("bob"), "Gateway issue, yours")
    # No trip through Bob's personal queue: he owns it now, the note pinned.
    assert (s.state, s.owner, s.queue, s.participants, s.held) == (SessionState.ACTIVE, "bob", None, {}, False)
    assert s.transfer_note == "Gateway issue, yours"
    assert e.waiting_in(QueueRef.personal("bob")) == [] and e.involved("bob") == {s.id} and e.involved("alice") == set()
    step = s.timeline[-1]
    assert (step.kind, step.by, step.queue, step.note) == (StepKind.TRANSFERRED, "alice", QueueRef.personal("bob"), "Gateway issue, yours")
    # The reps read who and why; the customer reads whom they are with now.
    lines = [(line.visibility, line.text) for line in s.chat[chat_before:]]
    assert lines == [
        (Visibility.REPS, "Alice Ng transferred the session to Bob Ortiz. Note: Gateway issue, yours"),
        (Visibility.ALL, "You are now with Bob Ortiz."),
    ]
    # Bob's console sees the session change hands (it never leaves his sight,
    # so his tab stays) and is told it was transferred to him; Alice's loses it.
    changes = bob.sync()
    assert s.id not in changes.gone and bob.state.sessions[s.id].owner == "bob"
    assert bob.state.rows["rep:bob"][s.id].kind is RowKind.MINE
    assert [(why, v.id) for why, v in changes.arrived] == [(Arrival.TRANSFER, s.id)]
    assert [line.text for _, line in changes.chat][-1] == "You are now with Bob Ortiz."
    changes = alice.sync()
    assert changes.gone[s.id] == SessionGoneData(s.id, GoneReason.TRANSFERRED, by="alice", to="rep:bob")


def test_transfer_to_a_participant_and_stay_swaps_owner_and_participant(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.accept_invitation("bob", e.share("alice", s.id, QueueRef.personal("bob")).id)
    alice = site.console("alice")
    e.transfer("alice", s.id, QueueRef.personal("bob"), stay=True)
    assert (s.owner, list(s.participants)) == ("bob", ["alice"])
    changes = alice.sync()
    assert s.id not in changes.gone and alice.state.sessions[s.id].owner == "bob"
    assert not changes.arrived, "the old owner is not alerted"
    # The new owner acts as owner: Alice may only leave now.
    assert_refused(e, Reason.NOT_OWNER, lambda: e.end("alice", s.id))
    e.leave("alice", s.id)
    assert s.participants == {} and s.owner == "bob"


def test_a_held_session_handed_to_a_participant_is_active_again(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.accept_invitation("bob", e.share("alice", s.id, QueueRef.personal("bob")).id)
    e.hold("alice", s.id)
    e.transfer("alice", s.id, QueueRef.personal("bob"))
    assert (s.state, s.owner, s.queue, s.held) == (SessionState.ACTIVE, "bob", None, False)
    assert e.waiting_in(QueueRef.personal("alice")) == [] and e.queue_position(s.id) is None


def test_the_customer_is_told_of_a_transfer_and_then_whom_they_are_with(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.transfer("alice", s.id, QueueRef.team("bill"), "over to billing")
    e.accept("carol", s.id)
    e.transfer("carol", s.id, QueueRef.personal("erin"))
    e.accept("erin", s.id)
    seen = [line.text for line in s.chat if line.visibility is Visibility.ALL]
    assert seen == [
        "Alice Ng accepted the session.",
        "You are being transferred to the Billing team.",
        "You are now with Carol Diaz.",
        "You are being transferred to Erin Wu.",
        "You are now with Erin Wu.",
    ]
    # Who accepted a transferred session is the reps' to read.
    reps = [line.text for line in s.chat if line.visibility is Visibility.REPS]
    assert "Carol Diaz accepted the session." in reps and "Erin Wu accepted the session." in reps


def test_transfer_to_yourself_is_refused(site: Site) -> None:
    s = site.active("alice")
    assert_refused(site.engine, Reason.INVALID, lambda: site.engine.transfer("alice", s.id, QueueRef.personal("alice")))


def test_transfer_to_a_rep_who_is_not_connected_is_refused(site: Site) -> None:
    # The session would wait in a queue nobody watches, and no fallback
    # would ever move it: the customer would wait forever.
    s = site.active("alice")
    site.engine.rep_disconnected("carol")
    site.tick(120)
    assert_refused(site.engine, Reason.REP_OFFLINE, lambda: site.engine.transfer("alice", s.id, QueueRef.personal("carol")))
    assert_refused(site.engine, Reason.REP_OFFLINE, lambda: site.engine.share("alice", s.id, QueueRef.personal("carol")))


def test_only_the_owner_transfers(site: Site) -> None:
    s = site.active("alice")
    site.engine.accept_invitation("bob", site.engine.share("alice", s.id, QueueRef.personal("bob")).id)
    assert_refused(site.engine, Reason.NOT_OWNER, lambda: site.engine.transfer("bob", s.id, QueueRef.team("bill")))
    assert_refused(site.engine, Reason.NOT_PARTICIPANT, lambda: site.engine.transfer("carol", s.id, QueueRef.team("bill")))


# -------------------------------------------------------------------- share


def test_sharing_with_a_rep_shows_an_invitation_in_their_personal_queue(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    bob = site.console("bob")
    inv = e.share("alice", s.id, QueueRef.personal("bob"))
    assert s.owner == "alice" and s.state is SessionState.ACTIVE
    changes = bob.sync()
    assert [(why, d.id) for why, d in changes.arrived] == [(Arrival.INVITATION, s.id)]
    row = bob.state.rows["rep:bob"][inv.id]
    assert row.kind is RowKind.INVITATION and row.session.id == s.id
    assert row.invitation is not None and row.invitation.by == "alice"
    assert s.timeline[-1].kind is StepKind.SHARED and s.chat[-1].visibility is Visibility.REPS
    # Accepting joins as participant; the owner keeps the session.
    result = execute(e, "bob", "accept_invitation", {"invitation": inv.id})
    assert (s.owner, list(s.participants)) == ("alice", ["bob"])
    assert isinstance(result, SessionResult) and result.session.participants == ["bob"]
    assert timeline_kinds(s)[-1] == "joined" and "Bob Ortiz joined" in s.chat[-1].text
    bob.sync()
    assert inv.id not in bob.state.rows["rep:bob"]
    assert bob.state.rows["rep:bob"][s.id].kind is RowKind.MINE


def test_sharing_with_a_team_lets_any_member_join(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    carol, erin = site.console("carol"), site.console("erin")
    inv = e.share("alice", s.id, QueueRef.team("bill"))
    assert carol.rows("team:bill")[inv.id] is RowKind.INVITATION
    assert erin.rows("team:bill")[inv.id] is RowKind.INVITATION
    e.accept_invitation("erin", inv.id)
    assert inv.id not in carol.rows("team:bill")
    assert_refused(e, Reason.UNKNOWN_INVITATION, lambda: e.accept_invitation("carol", inv.id))
    assert list(s.participants) == ["erin"]


def test_sharing_twice_with_the_same_queue_is_one_invitation(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    first = e.share("alice", s.id, QueueRef.team("bill"))
    seq = e.seq
    assert e.share("alice", s.id, QueueRef.team("bill")) is first and e.seq == seq
    assert len(s.invitations) == 1


def test_invitation_refusals(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    inv = e.share("alice", s.id, QueueRef.personal("bob"))
    assert_refused(e, Reason.NOT_MEMBER, lambda: e.accept_invitation("carol", inv.id))
    assert_refused(e, Reason.UNKNOWN_INVITATION, lambda: e.accept_invitation("bob", "I999"))
    assert_refused(e, Reason.ALREADY_IN_SESSION, lambda: e.share("alice", s.id, QueueRef.personal("alice")))
    team_inv = e.share("alice", s.id, QueueRef.team("net"))
    e.accept_invitation("bob", inv.id)
    assert_refused(e, Reason.ALREADY_IN_SESSION, lambda: e.share("alice", s.id, QueueRef.personal("bob")))
    assert_refused(e, Reason.ALREADY_IN_SESSION, lambda: e.accept_invitation("bob", team_inv.id))
    assert_refused(e, Reason.ALREADY_IN_SESSION, lambda: e.accept_invitation("alice", team_inv.id))
    assert_refused(e, Reason.NOT_OWNER, lambda: e.share("bob", s.id, QueueRef.team("bill")))


# --------------------------------------------------------------------- hold


def test_hold_parks_the_session_in_the_owners_queue_and_keeps_participants(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.accept_invitation("bob", e.share("alice", s.id, QueueRef.personal("bob")).id)
    alice = site.console("alice")
    e.hold("alice", s.id)
    assert (s.state, s.held, s.owner, s.queue) == (SessionState.WAITING, True, "alice", QueueRef.personal("alice"))
    assert list(s.participants) == ["bob"]
    assert s.timeline[-1].kind is StepKind.HELD
    assert s.chat[-1].visibility is Visibility.ALL and "on hold" in s.chat[-1].text
    assert alice.rows("rep:alice")[s.id] is RowKind.WAITING and alice.state.sessions[s.id].held is True
    # Nobody else can pick it up from Alice's queue, not even the participant.
    assert_refused(e, Reason.NOT_MEMBER, lambda: e.accept("bob", s.id))
    assert_refused(e, Reason.INVALID, lambda: e.hold("alice", s.id))
    assert_refused(e, Reason.NOT_OWNER, lambda: e.hold("bob", s.id))
    # Accepting it again resumes it, with everyone still there.
    e.accept("alice", s.id)
    assert (s.state, s.held, s.owner, list(s.participants)) == (SessionState.ACTIVE, False, "alice", ["bob"])
    assert "resumed" in s.chat[-1].text


def test_a_held_session_can_still_be_transferred_or_ended(site: Site) -> None:
    e = site.engine
    s, t = site.active("alice"), site.active("alice", name="Two")
    e.hold("alice", s.id)
    e.hold("alice", t.id)
    e.transfer("alice", s.id, QueueRef.team("bill"))
    assert (s.held, s.queue, s.owner) == (False, QueueRef.team("bill"), None)
    e.end("alice", t.id)
    assert t.state is SessionState.ENDED and e.queue_count(QueueRef.personal("alice")) == 0


# ---------------------------------------------------------------- end, leave


def test_end_removes_everyone_and_withdraws_invitations(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.accept_invitation("bob", e.share("alice", s.id, QueueRef.personal("bob")).id)
    e.share("alice", s.id, QueueRef.team("bill"))
    bob, carol = site.console("bob"), site.console("carol")
    assert carol.rows("team:bill")
    e.end("alice", s.id)
    assert (s.state, s.end_reason, s.ended_at) == (SessionState.ENDED, "ended by Alice Ng", site.clock.now)
    assert s.invitations == {} and e.involved("alice") == e.involved("bob") == set()
    assert s.id not in {x.id for x in e.sessions()} and e.session(s.id) is s
    assert bob.sync().gone[s.id] == SessionGoneData(s.id, GoneReason.ENDED, detail="ended by Alice Ng")
    assert carol.rows("team:bill") == {} and carol.state.sessions == {}
    for action in (lambda: e.say("alice", s.id, "hi"), lambda: e.end("alice", s.id), lambda: e.accept("alice", s.id)):
        assert_refused(e, Reason.SESSION_ENDED, action, session_ids=[s.id])


def test_only_the_owner_ends(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.accept_invitation("bob", e.share("alice", s.id, QueueRef.personal("bob")).id)
    assert_refused(e, Reason.NOT_OWNER, lambda: e.end("bob", s.id))
    assert_refused(e, Reason.NOT_PARTICIPANT, lambda: e.end("carol", s.id))


def test_a_participant_leaves_and_the_session_goes_on(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.accept_invitation("bob", e.share("alice", s.id, QueueRef.personal("bob")).id)
    bob = site.console("bob")
    e.leave("bob", s.id)
    assert (s.state, s.owner, s.participants) == (SessionState.ACTIVE, "alice", {})
    assert s.timeline[-1].kind is StepKind.LEFT and s.timeline[-1].by == "bob"
    assert "Bob Ortiz left" in s.chat[-1].text
    assert bob.sync().gone[s.id].id == s.id and e.involved("bob") == set()
    assert_refused(e, Reason.NOT_PARTICIPANT, lambda: e.leave("bob", s.id))


def test_the_owner_cannot_leave(site: Site) -> None:
    s = site.active("alice")
    assert_refused(site.engine, Reason.INVALID, lambda: site.engine.leave("alice", s.id))


def test_customer_leaving_ends_the_session(site: Site) -> None:
    e = site.engine
    waiting, active = site.waiting_in_net(), site.active("bob")
    e.customer_leave(waiting.id)
    e.customer_leave(active.id)
    assert [(x.state, x.end_reason) for x in (waiting, active)] == [(SessionState.ENDED, "customer left")] * 2
    assert e.queue_count(QueueRef.team("net")) == 0 and e.involved("bob") == set()


# --------------------------------------------------------------------- chat


def test_chat_to_everyone_or_to_reps_only(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.say("alice", s.id, "Hi, I'm Alice.")
    e.say("alice", s.id, "Looks like their VPN profile is broken.", reps_only=True)
    e.customer_say(s.id, "Thanks!")
    lines = [(line.author, line.visibility, line.text) for line in s.chat[1:]]
    assert lines == [
        ("alice", Visibility.ALL, "Hi, I'm Alice."),
        ("alice", Visibility.REPS, "Looks like their VPN profile is broken."),
        (CUSTOMER, Visibility.ALL, "Thanks!"),
    ]
    assert [line.n for line in s.chat] == list(range(1, len(s.chat) + 1))
    # What the customer's window shows: everything but the reps-only lines.
    customer_view = [line.text for line in s.chat if line.visibility is Visibility.ALL]
    assert "Looks like their VPN profile is broken." not in customer_view


def test_chat_reaches_the_reps_in_the_session_and_nobody_else(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.accept_invitation("erin", e.share("alice", s.id, QueueRef.personal("erin")).id)
    bob = site.console("bob")  # Networking, but not in the session
    seq = e.seq
    e.say("erin", s.id, "joining to help", reps_only=True)
    event = site.events[-1]
    assert (event.seq, event.kind, event.audience) == (seq + 1, EventKind.CHAT, frozenset({"alice", "erin"}))
    bob.sync()
    assert EventKind.CHAT not in bob.kinds()


def test_event_lines_are_logged_in_the_chat(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.accept_invitation("bob", e.share("alice", s.id, QueueRef.personal("bob")).id)
    e.hold("alice", s.id)
    e.accept("alice", s.id)
    e.transfer("alice", s.id, QueueRef.team("bill"), "over to billing")
    events = [(line.author, line.visibility, line.text) for line in s.chat]
    assert all(author is None for author, _, _ in events)
    texts = [text for _, _, text in events]
    assert texts == [
        "Alice Ng accepted the session.",
        "Alice Ng invited Bob Ortiz to join.",
        "Bob Ortiz joined the session.",
        "Alice Ng put the session on hold.",
        "Alice Ng resumed the session.",
        "Alice Ng transferred the session to team Billing. Note: over to billing",
        "You are being transferred to the Billing team.",
    ]
    assert events[-2][1] is Visibility.REPS and events[-1][1] is Visibility.ALL


def test_a_rep_who_joins_later_gets_the_full_history(site: Site) -> None:
    e = site.engine
    s = site.waiting_in_net()
    e.customer_say(s.id, "Is anyone there?")  # said while waiting, seen by nobody yet
    accepted = execute(e, "alice", "accept", {"session": s.id})
    assert isinstance(accepted, SessionResult) and isinstance(accepted.session.chat, list)
    assert [line.text for line in accepted.session.chat] == ["Is anyone there?", "Alice Ng accepted the session."]
    e.say("alice", s.id, "note to self", reps_only=True)
    inv = e.share("alice", s.id, QueueRef.personal("bob"))
    joined = execute(e, "bob", "accept_invitation", {"invitation": inv.id})
    assert isinstance(joined, SessionResult) and isinstance(joined.session.chat, list)
    assert joined.session.chat == [line.view() for line in s.chat]
    assert any(line.visibility is Visibility.REPS for line in joined.session.chat)
    # So does a console that (re)connects: the snapshot carries the chat
    # of the sessions the rep is in, and only of those.
    snap = e.snapshot("bob")
    (mine,) = [x for x in snap.sessions if x.id == s.id]
    assert mine.chat == [line.view() for line in s.chat]
    other = e.start_with_issue("vpn", intake("Other"))
    (waiting,) = [x for x in e.snapshot("bob").sessions if x.id == other.id]
    assert waiting.chat is UNSET


@pytest.mark.parametrize(("text", "reason"), [("   ", Reason.INVALID), ("x" * (CHAT_LIMIT + 1), Reason.INVALID), (7, Reason.INVALID)])
def test_bad_chat_text_is_refused(site: Site, text: object, reason: Reason) -> None:
    s = site.active("alice")
    assert_refused(site.engine, reason, lambda: site.engine.say("alice", s.id, text))  # type: ignore[arg-type]
    assert_refused(site.engine, reason, lambda: site.engine.customer_say(s.id, text))  # type: ignore[arg-type]


def test_only_reps_in_the_session_chat_in_it(site: Site) -> None:
    s = site.active("alice")
    assert_refused(site.engine, Reason.NOT_PARTICIPANT, lambda: site.engine.say("bob", s.id, "hi"))


def test_external_key_is_editable_by_the_reps_in_the_session(site: Site) -> None:
    e = site.engine
    s = site.active("alice")
    e.set_external_key("alice", s.id, "TCK-1")
    last = site.events[-1]
    assert s.external_key == "TCK-1" and isinstance(last.data, SessionData) and last.data.session.external_key == "TCK-1"
    assert_refused(e, Reason.NOT_PARTICIPANT, lambda: e.set_external_key("bob", s.id, "TCK-2"))
    assert_refused(e, Reason.INVALID, lambda: e.set_external_key("alice", s.id, "x" * 101))


# ---------------------------------------------------------------- team chat


def test_team_chat_reaches_the_team_and_counts_unread_per_rep(site: Site) -> None:
    e = site.engine
    alice, bob, carol = site.console("alice"), site.console("bob"), site.console("carol")
    e.team_say("alice", "net", "VPN gateway is flaky")
    e.team_say("erin", "net", "on it")
    assert site.events[-1].audience == frozenset({"alice", "bob", "erin"})
    for c in (alice, bob, carol):
        c.sync()
    assert bob.state.team_chat["net"].unread == 2
    assert alice.state.team_chat["net"].unread == 1  # her own line is read
    assert "net" not in carol.state.team_chat and EventKind.TEAM_CHAT not in carol.kinds()
    # Reading is per rep and only moves forward.
    assert e.team_read("bob", "net", 1) == 1
    bob.sync()
    assert bob.state.team_chat["net"].unread == 1 and alice.state.team_chat["net"].unread == 1
    assert e.team_read("bob", "net", 0) == 1
    assert e.team_read("bob", "net") == 2
    bob.sync()
    assert bob.state.team_chat["net"].unread == 0
    assert e.snapshot("bob").team_chat["net"].last_read == 2
    assert e.snapshot("alice").team_chat["net"].last_read == 1
    read_events = [ev for ev in site.events if ev.kind is EventKind.TEAM_READ]
    assert all(ev.audience == frozenset({"bob"}) for ev in read_events) and len(read_events) == 2


def test_team_chat_keeps_a_bounded_history(site: Site) -> None:
    e = site.engine
    for i in range(TEAM_CHAT_HISTORY + 5):
        e.team_say("alice", "net", f"line {i}")
    snap = e.snapshot("bob").team_chat["net"]
    assert snap.count == TEAM_CHAT_HISTORY + 5 and len(snap.lines) == TEAM_CHAT_HISTORY
    assert snap.lines[-1].n == TEAM_CHAT_HISTORY + 5


def test_team_chat_is_for_members_only(site: Site) -> None:
    e = site.engine
    assert_refused(e, Reason.NOT_MEMBER, lambda: e.team_say("carol", "net", "hello?"))
    assert_refused(e, Reason.NOT_MEMBER, lambda: e.team_read("carol", "net"))
    assert_refused(e, Reason.UNKNOWN_TEAM, lambda: e.team_say("carol", "nope", "hello?"))


def test_an_empty_team_message_is_refused_and_counts_nothing(site: Site) -> None:
    e = site.engine
    assert_refused(e, Reason.INVALID, lambda: e.team_say("alice", "net", "   "))
    assert e.snapshot("bob").team_chat["net"].count == 0


def test_a_session_view_carries_each_field_under_its_own_name(site: Site) -> None:
    """Session.view() builds its Struct positionally (for speed): every field must land in its own slot."""
    s = site.start(Origin.BROWSER_TEAM, intake(company="Acme", company_code="AC-1", details="d", platform="Linux",
                                               locale="de", external_key="T-1", portal="p", custom_fields={"k": "v"}))
    site.engine.accept("carol", s.id)
    site.engine.share("carol", s.id, QueueRef.team("net"))
    site.engine.say("carol", s.id, "hello")
    view = s.view(chat=True)
    derived = {"browser": s.origin.is_browser, "queue": s.queue.serialize() if s.queue else None,
               "participants": list(s.participants), "invitations": [i.view() for i in s.invitations.values()],
               "timeline": [step.view() for step in s.timeline], "chat": [line.view() for line in s.chat]}
    for name in SessionView.__struct_fields__:
        expected = derived[name] if name in derived else getattr(s, name)
        assert getattr(view, name) == expected, name
