"""How a customer reaches a queue: every origin, the intake, session keys."""

from __future__ import annotations

import pytest
from engine_helpers import (
    ALL_ORIGINS,
    BUTTON_EXPIRES_AT,
    ORIGIN_QUEUE,
    Site,
    assert_refused,
    intake,
    site,  # noqa: F401  (pytest fixture)
)

from repconsole.core.engine import KEY_ALPHABET, MAX_KEY_VALIDITY
from repconsole.core.errors import CommandError, Reason
from repconsole.core.intake import CUSTOM_FIELDS_LIMIT, DETAILS_LIMIT, NAME_LIMIT, Intake
from repconsole.core.model import Origin, Priority, QueueRef, SessionState, StepKind
from repconsole.protocol import EventKind, KeyData, SessionData

# ------------------------------------------------------------------ origins


@pytest.mark.parametrize("origin", ALL_ORIGINS, ids=str)
def test_every_origin_lands_waiting_in_its_queue(site: Site, origin: Origin) -> None:
    s = site.start(origin)
    assert s.origin is origin
    assert s.state is SessionState.WAITING
    assert s.queue == ORIGIN_QUEUE[origin]
    assert s.owner is None and not s.participants
    assert site.engine.waiting_in(ORIGIN_QUEUE[origin]) == [s]
    assert s.timeline[0].kind is StepKind.ARRIVED and s.timeline[0].queue == ORIGIN_QUEUE[origin]
    assert s.first_queue == ORIGIN_QUEUE[origin]
    assert s.to_dict()["origin"] == origin.value


def test_session_key_goes_to_the_personal_queue_of_the_rep_who_made_it(site: Site) -> None:
    key = site.engine.generate_key("bob", 300)
    s = site.engine.start_with_key(key.key, intake())
    assert s.queue == QueueRef.personal("bob")
    assert s.session_key == key.key
    assert key.used_by == s.id
    assert site.engine.keys_of("bob") == []


def test_key_session_event_carries_the_key(site: Site) -> None:
    # The arrival event is what every console mirrors: it must already
    # carry the session key, not just the engine's object.
    key = site.engine.generate_key("alice", 300)
    s = site.engine.start_with_key(key.key, intake())
    arrival = next(e for e in site.events if isinstance(e.data, SessionData) and e.data.session.id == s.id)
    assert arrival.data.session.session_key == key.key


def test_rep_picked_on_the_site_goes_to_that_rep(site: Site) -> None:
    s = site.engine.start_with_rep("dave", intake())
    assert (s.origin, s.queue, s.source) == (Origin.REP_PICKED, QueueRef.personal("dave"), "dave")


def test_rep_picked_is_refused_when_the_rep_is_not_connected(site: Site) -> None:
    site.engine.rep_disconnected("dave")
    err = assert_refused(site.engine, Reason.REP_OFFLINE, lambda: site.engine.start_with_rep("dave", intake()))
    assert err.data == {"rep": "dave"}
    assert site.engine.queue_count(QueueRef.personal("dave")) == 0


def test_support_buttons_route_to_their_rep_or_team(site: Site) -> None:
    mine = site.engine.start_with_button("btn-alice", intake())
    team = site.engine.start_with_button("btn-net", intake())
    assert (mine.origin, mine.queue, mine.source) == (Origin.REP_BUTTON, QueueRef.personal("alice"), "Alice's desk button")
    assert (team.origin, team.queue, team.source) == (Origin.TEAM_BUTTON, QueueRef.team("net"), "Networking Support Button")


def test_support_button_stops_at_the_end_of_its_lifetime(site: Site) -> None:
    site.clock.now = BUTTON_EXPIRES_AT - 0.5
    s = site.engine.start_with_button("btn-promo", intake())
    assert s.queue == QueueRef.team("bill")
    site.clock.now = BUTTON_EXPIRES_AT
    assert_refused(site.engine, Reason.BUTTON_EXPIRED, lambda: site.engine.start_with_button("btn-promo", intake()))
    # A session the button started before it expired is not affected.
    assert site.engine.session(s.id).state is SessionState.WAITING


def test_issue_form_goes_to_the_team_that_owns_the_issue(site: Site) -> None:
    s = site.engine.start_with_issue("invoice", intake())
    assert s.queue == QueueRef.team("bill")
    assert (s.issue_code, s.issue, s.category, s.source) == ("invoice", "Invoice question", "Billing", "invoice")


@pytest.mark.parametrize(("link", "queue", "origin"), [
    ("link-alice", QueueRef.personal("alice"), Origin.BROWSER_REP),
    ("link-bill", QueueRef.team("bill"), Origin.BROWSER_TEAM),
])
def test_browser_links_route_and_flag_the_session(site: Site, link: str, queue: QueueRef, origin: Origin) -> None:
    s = site.engine.start_browser(link, intake(), page_url="https://x.example/a", page_html="<b>a</b>")
    assert (s.origin, s.queue, s.browser) == (origin, queue, True)
    d = s.to_dict()
    assert d["browser"] is True and d["origin"] == origin.value and d["page_url"] == "https://x.example/a"
    # The page itself only travels to reps in the session, with the chat.
    assert "page_html" not in d and s.to_dict(chat=True)["page_html"] == "<b>a</b>"


@pytest.mark.parametrize("origin", [o for o in ALL_ORIGINS if not o.is_browser], ids=str)
def test_non_browser_sessions_are_not_flagged(site: Site, origin: Origin) -> None:
    s = site.start(origin)
    assert s.browser is False and s.to_dict()["browser"] is False


@pytest.mark.parametrize(("call", "reason"), [
    (lambda e: e.start_with_button("btn-nope", intake()), Reason.UNKNOWN_BUTTON),
    (lambda e: e.start_with_issue("nope", intake()), Reason.UNKNOWN_ISSUE),
    (lambda e: e.start_browser("link-nope", intake()), Reason.UNKNOWN_LINK),
    (lambda e: e.start_with_rep("nobody", intake()), Reason.UNKNOWN_REP),
    (lambda e: e.start_with_issue("vpn", {"customer_name": "x"}), Reason.INVALID),
])
def test_unknown_entry_points_are_refused(site: Site, call, reason: Reason) -> None:
    assert_refused(site.engine, reason, lambda: call(site.engine))


# ------------------------------------------------------------------- intake

FULL_INTAKE = {
    "company": "Acme Corp",
    "company_code": "ACM",
    "details": "Worked yesterday.",
    "platform": "Windows 11",
    "locale": "de-DE",
    "external_key": "TCK-4711",
    "portal": "Partner Portal",
    "custom_fields": {"contract": "Gold", "asset tag": "AT-1234"},
    "priority": Priority.HIGH,
}


@pytest.mark.parametrize("origin", ALL_ORIGINS, ids=str)
def test_intake_fields_are_carried_whatever_the_origin(site: Site, origin: Origin) -> None:
    s = site.start(origin, intake("  Ann Lee  ", **FULL_INTAKE))
    d = s.to_dict()
    assert d["customer_name"] == "Ann Lee"  # trimmed, not otherwise changed
    for name, value in FULL_INTAKE.items():
        assert d[name] == (int(value) if name == "priority" else value), name


@pytest.mark.parametrize("origin", [o for o in ALL_ORIGINS if o is not Origin.ISSUE_FORM], ids=str)
def test_missing_fields_stay_empty_rather_than_made_up(site: Site, origin: Origin) -> None:
    s = site.start(origin, intake("Zed"))
    d = s.to_dict()
    assert d["issue_code"] is None
    for name in ("issue", "category", "company", "company_code", "details", "platform", "locale", "external_key", "portal"):
        assert d[name] == "", name
    assert d["custom_fields"] == {}


def test_intake_custom_fields_are_copied_not_shared(site: Site) -> None:
    fields = {"contract": "Gold"}
    s = site.engine.start_with_issue("vpn", intake(custom_fields=fields))
    fields["contract"] = "changed later"
    assert s.custom_fields == {"contract": "Gold"}


@pytest.mark.parametrize("name", ["customer_name", "company", "company_code", "platform", "locale", "external_key", "portal"])
def test_short_fields_are_limited_to_100_characters(name: str) -> None:
    base = {"customer_name": "Ann"}
    Intake(**(base | {name: "x" * NAME_LIMIT}))
    with pytest.raises(CommandError) as info:
        Intake(**(base | {name: "x" * (NAME_LIMIT + 1)}))
    assert info.value.reason is Reason.INVALID and info.value.data == {"field": name}


def test_details_are_limited_to_one_kilobyte() -> None:
    assert NAME_LIMIT == 100 and DETAILS_LIMIT == 1024 and CUSTOM_FIELDS_LIMIT == 10 * 1024
    Intake("Ann", details="d" * DETAILS_LIMIT)
    with pytest.raises(CommandError) as info:
        Intake("Ann", details="d" * (DETAILS_LIMIT + 1))
    assert (info.value.reason, info.value.data) == (Reason.INVALID, {"field": "details"})


def test_custom_fields_are_limited_to_ten_kilobytes_in_total() -> None:
    half = CUSTOM_FIELDS_LIMIT // 2
    Intake("Ann", custom_fields={"a": "v" * (half - 1), "b": "v" * (half - 1)})  # keys count too: exactly the limit
    with pytest.raises(CommandError) as info:
        Intake("Ann", custom_fields={"a": "v" * (half - 1), "b": "v" * half})
    assert (info.value.reason, info.value.data) == (Reason.INVALID, {"field": "custom_fields"})


@pytest.mark.parametrize("bad", [
    {"customer_name": "   "},
    {"customer_name": 7},
    {"company": "ok"},  # no customer_name
    {"customer_name": "Ann", "favourite_colour": "teal"},
    {"customer_name": "Ann", "custom_fields": {"n": 3}},
    {"customer_name": "Ann", "priority": 9},
])
def test_malformed_intake_is_refused_as_invalid(bad: dict) -> None:
    with pytest.raises(CommandError) as info:
        Intake.from_dict(bad)
    assert info.value.reason is Reason.INVALID


def test_a_refused_intake_starts_nothing(site: Site) -> None:
    # The start API builds the Intake first; a refusal never reaches a queue.
    def start() -> None:
        site.engine.start_with_issue("vpn", Intake.from_dict({"customer_name": "Ann", "details": "x" * 5000}))

    assert_refused(site.engine, Reason.INVALID, start)


# --------------------------------------------------------------------- keys


def test_keys_are_seven_characters_from_the_unambiguous_alphabet(site: Site) -> None:
    keys = [site.engine.generate_key("alice", 600).key for _ in range(300)]
    assert all(len(k) == 7 and set(k) <= set(KEY_ALPHABET) for k in keys)
    assert len(set(keys)) == len(keys)
    # Nothing that reads the same as something else over the phone.
    assert not set(KEY_ALPHABET) & set("0O1IL2Z5S8B")
    assert set(KEY_ALPHABET) <= set("ACDEFGHJKMNPQRTUVWXY34679")
    # 300 keys should use most of a 25-character alphabet if they are random.
    assert len(set("".join(keys))) >= 20


def test_key_validity_is_the_reps_choice_and_limits_only_the_start(site: Site) -> None:
    key = site.engine.generate_key("alice", 120)
    assert key.expires_at - key.created_at == 120
    site.tick(119.5)
    s = site.engine.start_with_key(key.key, intake())
    site.tick(3600)
    # Validity limits when a session may start, not how long it lasts.
    assert site.engine.session(s.id).state is SessionState.WAITING
    assert site.engine.accept("alice", s.id).state is SessionState.ACTIVE


@pytest.mark.parametrize("valid_for", [0, -5, MAX_KEY_VALIDITY + 1, "600"])
def test_key_validity_must_be_positive_and_bounded(site: Site, valid_for: object) -> None:
    assert_refused(site.engine, Reason.INVALID, lambda: site.engine.generate_key("alice", valid_for))  # type: ignore[arg-type]


def test_used_expired_and_unknown_keys_have_distinct_reasons(site: Site) -> None:
    e = site.engine
    used = e.generate_key("alice", 600)
    e.start_with_key(used.key, intake(), source="a")
    expiring = e.generate_key("alice", 60)
    site.tick(60)  # expiry is inclusive: at expires_at the key is dead
    # Different sources, so that rate limiting stays out of the picture.
    assert_refused(e, Reason.KEY_USED, lambda: e.start_with_key(used.key, intake(), source="b"))
    assert_refused(e, Reason.KEY_EXPIRED, lambda: e.start_with_key(expiring.key, intake(), source="c"))
    assert_refused(e, Reason.KEY_UNKNOWN, lambda: e.start_with_key("ACDEFGH", intake(), source="d"))
    assert len({Reason.KEY_USED, Reason.KEY_EXPIRED, Reason.KEY_UNKNOWN}) == 3


def test_a_key_works_once(site: Site) -> None:
    key = site.engine.generate_key("alice", 600)
    site.engine.start_with_key(key.key, intake())
    assert_refused(site.engine, Reason.KEY_USED, lambda: site.engine.start_with_key(key.key, intake("Mallory")))
    assert site.engine.queue_count(QueueRef.personal("alice")) == 1


@pytest.mark.parametrize("typed", ["{k}", "{lower}", "{a}-{b}", " {a} {b} ", "{lower_a}-{b}"])
def test_keys_are_read_back_case_and_separator_insensitively(site: Site, typed: str) -> None:
    key = site.engine.generate_key("alice", 600).key
    text = typed.format(k=key, lower=key.lower(), a=key[:3], b=key[3:], lower_a=key[:3].lower())
    s = site.engine.start_with_key(text, intake())
    assert s.session_key == key and s.queue == QueueRef.personal("alice")


def test_wrong_guesses_are_rate_limited_per_source_for_a_minute(site: Site) -> None:
    e = site.engine
    limit = e.site.key_failures_per_minute
    assert limit == 5
    good = e.generate_key("alice", 3600)
    for i in range(limit):
        assert_refused(e, Reason.KEY_UNKNOWN, lambda i=i: e.start_with_key(f"AAAA{KEY_ALPHABET[i]}AA", intake(), source="198.51.100.7"))
        site.tick(1)
    # Even the right key is refused now, and is not used up by the refusal.
    assert_refused(e, Reason.KEY_RATE_LIMITED, lambda: e.start_with_key(good.key, intake(), source="198.51.100.7"))
    assert good.used_by is None
    # Another caller is not affected.
    other = e.generate_key("bob", 600)
    assert e.start_with_key(other.key, intake(), source="203.0.113.9").queue == QueueRef.personal("bob")
    # The first failure was at +0; it stops counting at +60.
    site.clock.now = site.clock.now - limit + 59.5
    assert_refused(e, Reason.KEY_RATE_LIMITED, lambda: e.start_with_key(good.key, intake(), source="198.51.100.7"))
    site.clock.now += 0.5
    assert e.start_with_key(good.key, intake(), source="198.51.100.7").session_key == good.key


def test_used_and_expired_keys_count_as_failures(site: Site) -> None:
    e = site.engine
    used = e.generate_key("alice", 600)
    e.start_with_key(used.key, intake(), source="x")
    for _ in range(e.site.key_failures_per_minute):
        with pytest.raises(CommandError):
            e.start_with_key(used.key, intake(), source="guesser")
    fresh = e.generate_key("alice", 600)
    assert_refused(e, Reason.KEY_RATE_LIMITED, lambda: e.start_with_key(fresh.key, intake(), source="guesser"))


def test_key_events_go_only_to_the_rep_who_made_it(site: Site) -> None:
    key = site.engine.generate_key("alice", 600)
    site.engine.start_with_key(key.key, intake())
    key_events = [e for e in site.events if e.kind is EventKind.KEY]
    assert all(isinstance(e.data, KeyData) for e in key_events)
    assert [(e.data.key.used_by is None, e.audience) for e in key_events] == [
        (True, frozenset({"alice"})),
        (False, frozenset({"alice"})),
    ]


def test_dead_keys_are_remembered_for_a_day_then_forgotten(site: Site) -> None:
    # For a day a late customer hears "expired", not "unknown"; after that the
    # key is dropped (the next generate_key() sweeps), so keys don't pile up.
    e = site.engine
    old = e.generate_key("alice", 60)
    site.clock.now = old.expires_at + 86400.0
    e.generate_key("bob", 60)
    assert_refused(e, Reason.KEY_EXPIRED, lambda: e.start_with_key(old.key, intake(), source="a"))
    site.clock.now += 0.5
    e.generate_key("bob", 60)
    assert_refused(e, Reason.KEY_UNKNOWN, lambda: e.start_with_key(old.key, intake(), source="b"))
