"""Malformed input, generated: the server answers every frame as documented and never breaks.

One in-process server serves every example.  Frames come from hypothesis:
random bytes (binary frames), random text, random JSON values, and valid
messages mutated (fields dropped, added, or given values of the wrong type,
huge integers, deep nesting, long and non-ASCII strings), at sizes around
the 64 KiB frame limit too.  They are sent on ``/rep`` before and after
login and on ``/customer`` before and after a session started.

Each frame's reply is checked against an oracle written from
docs/protocol.md (not from the server's parser): the error reason, the
request id echoed when one could be read, and the close code where the
protocol closes (4401 after a refused login or resume, 4426 after a login
or resume in a protocol version the server does not speak, 4000 after
logout, 1009 for a frame over 64 KiB, 1000 after a customer leaves).  Every
reply is validated against docs/protocol.schema.json and decoded strictly
into its protocol Struct (server_helpers).  The valid messages that
mutations start from are protocol Structs as their clients encode them.

Throughout, a well-behaved console (erin) stays connected: after every
example a customer arrives and erin must be told, and must get an answer to
a command.  Any ERROR log record or traceback from the server fails the test.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import TIMEOUT_SCALE
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from msgspec import UNSET
from server_helpers import CHEAP, CustomerClient, LogProblems, RepClient, plain, serving, session_event, wire, write_site
from websockets.exceptions import ConnectionClosed

from repconsole.core.commands import COMMANDS
from repconsole.core.intake import Intake
from repconsole.protocol import (
    MAX_FRAME,
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    Command,
    CustomerResume,
    Error,
    ErrorReason,
    Leave,
    Login,
    Logout,
    MessageType,
    Priority,
    Reason,
    Result,
    Resume,
    Say,
    Start,
    Started,
    Via,
    Welcome,
    request_key,
)
from repconsole.protocol import Intake as IntakeMessage
from repconsole.server.auth import hash_password
from repconsole.server.runtime import command_digest

EXAMPLES = 250  # per endpoint and state; each example sends up to 4 frames
INT64 = 2**63
ENGINE_REASONS = frozenset(Reason)
START_REASONS = frozenset({
    Reason.INVALID, Reason.UNKNOWN_ISSUE, Reason.KEY_UNKNOWN, Reason.KEY_EXPIRED, Reason.KEY_USED, Reason.KEY_RATE_LIMITED,
    Reason.UNKNOWN_REP, Reason.REP_OFFLINE, Reason.UNKNOWN_BUTTON, Reason.BUTTON_EXPIRED, Reason.UNKNOWN_LINK,
    ErrorReason.RATE_LIMITED,
})  # fmt: skip
BAD = frozenset({ErrorReason.BAD_MESSAGE})
NO_ID = object()
LOGIN, RESUME, COMMAND, LOGOUT = MessageType.LOGIN, MessageType.RESUME, MessageType.COMMAND, MessageType.LOGOUT
START, SAY, LEAVE = MessageType.START, MessageType.SAY, MessageType.LEAVE


def by_hand(**fields: Any) -> str:
    """A frame written by hand: what the protocol's Structs would never send."""
    return json.dumps(fields)


# ------------------------------------------------------------------ the harness


class Harness:
    """A server on a loop of its own, kept across examples, with a witness console."""

    def __init__(self, tmp: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.problems = LogProblems().__enter__()
        self._serving = serving(write_site(tmp), tmp / "data")
        self.server = self.run(self._serving.__aenter__())
        rt = self.server.runtime
        # An unknown username costs as much as a wrong password: a dummy hash as costly as a
        # stored one.  Store one cheap hash, or every refused fuzz login costs a full scrypt.
        rt.store.set_password_hash("dave", hash_password("dave-secret-pw", CHEAP))
        self.witness: RepClient = self.run(RepClient.logged_in(self.server, "erin"))
        self.rep: RepClient | None = None  # carol, logged in, reused while it lives
        # Her login's answered commands, by request_key(id): the answer and what it answered.
        self.answers: dict[str, tuple[Result | Error, bytes]] = {}
        self.arrivals = 0

    def run(self, coro: Any, seconds: float = 20.0) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(coro, seconds * TIMEOUT_SCALE))

    def example(self, coro: Any) -> None:
        """Run one example: what the server logs during it is that example's."""
        self.problems.records.clear()
        self.run(coro)

    def close(self) -> None:
        self.problems.__exit__(None, None, None)
        self.run(self._serving.__aexit__(None, None, None))
        self.loop.close()

    async def logged_in(self) -> RepClient:
        """A fresh connection of carol's: a resume of her login while it lasts, else a new login."""
        if self.rep is not None:
            c = await RepClient.open(self.server)
            welcome = await c.resume(self.rep.token, self.server.runtime.engine.seq)
            if isinstance(welcome, Welcome):
                return c
        c = await RepClient.logged_in(self.server, "carol")
        self.rep = c
        self.answers = {}  # a new login session: a new id space
        return c

    async def still_serving(self) -> None:
        """The witness is told of a new customer and gets its command answered; nothing was logged."""
        rt = self.server.runtime
        self.arrivals += 1
        with rt.step():
            sid = rt.engine.start_with_issue("vpn", Intake(f"Witness check {self.arrivals}")).id
        await self.witness.wait_event(session_event(sid), timeout=5)
        assert isinstance(await self.witness.call("team_read", team="net"), Result)
        assert not self.problems.records, self.problems.records


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(tmp_path_factory.mktemp("fuzz"))
    try:
        yield h
    finally:
        h.close()


# ------------------------------------------------------------------ the oracle


@dataclass
class Expect:
    """One acceptable outcome of sending a frame.

    Attributes:
        rid: the id the reply must carry, or NO_ID for none.
        reasons: acceptable error reasons.
        ok: acceptable replies other than an :class:`Error` (their classes).
        close: the server then closes with this code; None: the connection stays open.
        reply: False when no reply comes before the close (logout, too big).
    """

    rid: Any = NO_ID
    reasons: frozenset[str] = frozenset()
    ok: frozenset[type] = frozenset()
    close: int | None = None
    reply: bool = True
    then: str | None = None  # what the connection's state becomes after an ok reply
    command: bool = False  # a command that reached the engine: its answer is stored by id

    def answers(self, reply: Any) -> bool:
        """Whether ``reply`` is an acceptable reply for this outcome."""
        rid = getattr(reply, "id", UNSET)
        if not self.reply or (NO_ID if rid is UNSET else rid) != self.rid:
            return False
        return reply.reason in self.reasons if isinstance(reply, Error) else type(reply) in self.ok

    def matches(self, reply: Any | None, code: int | None) -> bool:
        """Whether what happened (the reply, the close code or None if still open) is this outcome."""
        if code != self.close:
            return False
        return reply is None if not self.reply else reply is not None and self.answers(reply)


@dataclass
class Reading:
    """A frame as the protocol reads it: its JSON value, or why it is not a message."""

    value: Any = None
    malformed: bool = False  # not JSON at all
    deep: bool = False  # nested deeper than a parser need follow


def _has_surrogates(v: Any) -> bool:
    if isinstance(v, str):
        return any(0xD800 <= ord(ch) <= 0xDFFF for ch in v)
    if isinstance(v, list):
        return any(_has_surrogates(x) for x in v)
    if isinstance(v, dict):
        return any(_has_surrogates(k) or _has_surrogates(x) for k, x in v.items())
    return False


DEEP_DEPTHS = (30_000, 20_000, 5000, 1000, 999, 990, 500, 100, 50)


def deep_text(depth: int, kind: str) -> str:
    """JSON nested ``depth`` levels: ``[[...0...]]`` or ``{"a":{"a":...0...}}``."""
    return "[" * depth + "0" + "]" * depth if kind == "list" else '{"a":' * depth + "0" + "}" * depth


def _read(frame: str) -> Reading:
    """JSON as RFC 8259 has it: no NaN or Infinity, numbers in range, no lone surrogates.

    Deeply nested values (as :func:`deep_text` writes them) are read as a
    shallow value of the same type, and the reading marked deep.
    """
    deep = False
    for depth in DEEP_DEPTHS:
        for kind, shallow in (("list", "[0]"), ("dict", '{"a":0}')):
            text = deep_text(depth, kind)
            if text in frame:
                frame, deep = frame.replace(text, shallow), True

    def constant(name: str) -> Any:
        raise ValueError(name)

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(text)
        return value

    try:
        value = json.loads(frame, parse_constant=constant, parse_float=number)
    except (ValueError, RecursionError):
        return Reading(malformed=True)
    if _has_surrogates(value):
        return Reading(malformed=True)
    return Reading(value, deep=deep)


def _valid_id(rid: Any) -> bool:
    return (isinstance(rid, str) and 0 < len(rid) <= 128) or (isinstance(rid, int) and not isinstance(rid, bool) and -INT64 <= rid < INT64)


def _text(msg: dict[str, Any], name: str, limit: int, *, default: Any = None, empty: bool = False) -> bool:
    v = msg.get(name, default)
    return isinstance(v, str) and (empty or bool(v)) and len(v) <= limit


def _count(msg: dict[str, Any], name: str, *, default: Any = None) -> bool:
    v = msg.get(name, default)
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < INT64


def _version(msg: dict[str, Any]) -> bool:
    """``protocol``, if given, is a version number: a whole number from 1 (absent means 1)."""
    v = msg.get("protocol", 1)
    return isinstance(v, int) and not isinstance(v, bool) and 1 <= v < INT64


def _envelope(frame: str | bytes, types: set[str]) -> tuple[list[Expect] | None, dict[str, Any], Any, str]:
    """The checks common to both endpoints.  Returns (final outcomes or None, msg, id, type)."""
    if isinstance(frame, bytes):
        return [Expect(NO_ID, BAD)], {}, None, ""
    if len(frame.encode()) > MAX_FRAME:
        return [Expect(close=1009, reply=False)], {}, None, ""
    reading = _read(frame)
    if reading.malformed or not isinstance(reading.value, dict):
        return [Expect(NO_ID, BAD)], {}, None, ""
    msg = reading.value
    rid, typ = msg.get("id"), msg.get("type")
    # Valid JSON nested deeper than any message needs: refusing it as not JSON is fair too.
    unreadable = [Expect(NO_ID, BAD)] if reading.deep else []
    if not _valid_id(rid):
        return [Expect(NO_ID, BAD)], msg, None, ""
    if not isinstance(typ, str):
        return [*unreadable, Expect(rid, BAD)], msg, rid, ""
    if typ not in types:
        return [*unreadable, Expect(rid, frozenset({ErrorReason.UNKNOWN_TYPE}))], msg, rid, typ
    if reading.deep:
        return None, msg, rid, typ + "+deep"
    return None, msg, rid, typ


def expect_rep(frame: str | bytes, logged_in: bool) -> list[Expect]:
    final, msg, rid, typ = _envelope(frame, {LOGIN, RESUME, COMMAND, LOGOUT})
    if final is not None:
        return final
    deep = typ.endswith("+deep")
    typ = typ.removesuffix("+deep")
    alts = [Expect(NO_ID, BAD)] if deep else []
    bad = [*alts, Expect(rid, BAD)]
    if typ == LOGIN and not (_text(msg, "username", 128) and _text(msg, "password", 1024) and _version(msg)):
        return bad
    if typ == RESUME and not (_text(msg, "token", 256) and _count(msg, "last_seq") and _version(msg)):
        return bad
    if typ == COMMAND and not (isinstance(msg.get("args", {}), dict) and _text(msg, "name", 64)):
        return bad
    if not logged_in:
        # The fuzzed site routes no team: version 2 is served too (docs/protocol.md, Versions).
        if typ in (LOGIN, RESUME) and not MIN_PROTOCOL_VERSION <= msg.get("protocol", 1) <= PROTOCOL_VERSION:
            return [*alts, Expect(rid, frozenset({ErrorReason.UNSUPPORTED_PROTOCOL}), close=4426)]
        if typ == LOGIN:
            return [*alts, Expect(rid, frozenset({ErrorReason.BAD_CREDENTIALS, ErrorReason.RATE_LIMITED}), close=4401)]
        if typ == RESUME:
            return [*alts, Expect(rid, frozenset({ErrorReason.TOKEN_UNKNOWN}), close=4401)]
        return [*alts, Expect(rid, frozenset({ErrorReason.NOT_LOGGED_IN}))]
    if typ in (LOGIN, RESUME):
        return [*alts, Expect(rid, frozenset({ErrorReason.ALREADY_LOGGED_IN}))]
    if typ == LOGOUT:
        return [*alts, Expect(close=4000, reply=False)]
    if msg["name"] not in COMMANDS:
        return [*alts, Expect(rid, frozenset({Reason.UNKNOWN_COMMAND}), command=True)]
    return [*alts, Expect(rid, ENGINE_REASONS, ok=frozenset({Result}), command=True)]


def expect_customer(frame: str | bytes, started: bool) -> list[Expect]:
    final, msg, rid, typ = _envelope(frame, {START, RESUME, SAY, LEAVE})
    if final is not None:
        return final
    deep = typ.endswith("+deep")
    typ = typ.removesuffix("+deep")
    alts = [Expect(NO_ID, BAD)] if deep else []
    bad = [*alts, Expect(rid, BAD)]
    if typ == START:
        via = msg.get("via")
        if via not in tuple(Via) or not isinstance(msg.get("intake"), dict):
            return bad
        if not (_text(msg, "page_url", 2048, default="", empty=True) and _text(msg, "page_html", MAX_FRAME, default="", empty=True)):
            return bad
        if (msg.get("page_url") or msg.get("page_html")) and via != Via.LINK:
            return bad
        if not _text(msg, via, 128):
            return bad
    if typ == RESUME and not (_text(msg, "token", 256) and _count(msg, "last_line", default=0)):
        return bad
    if typ == SAY and not isinstance(msg.get("text"), str):
        return bad
    if typ in (START, RESUME) and started:
        return [*alts, Expect(rid, frozenset({ErrorReason.ALREADY_STARTED}))]
    if typ == START:
        return [*alts, Expect(rid, START_REASONS, ok=frozenset({Started}), then="started")]
    if typ == RESUME:
        return [*alts, Expect(rid, frozenset({ErrorReason.TOKEN_UNKNOWN}))]
    if not started:
        return [*alts, Expect(rid, frozenset({ErrorReason.NOT_STARTED}))]
    if typ == SAY:
        return [*alts, Expect(rid, frozenset({Reason.INVALID, Reason.SESSION_ENDED}), ok=frozenset({Result}))]
    return [*alts, Expect(rid, frozenset(), ok=frozenset({Result}), close=1000, then="left")]


# ------------------------------------------------------------------ strategies

SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Co")), max_size=40)  # Co: the DEEP marker's
HUGE_INTS = st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**30, 10**400, -(10**400)])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), HUGE_INTS, st.floats(allow_nan=False, allow_infinity=False), SAFE_TEXT,
    st.sampled_from(["", "S1", "S2", "I1", "team:net", "rep:carol", "vpn", "issue", LOGIN, COMMAND, "é", "🙂" * 3]),
)  # fmt: skip
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(SAFE_TEXT, inner, max_size=4), max_leaves=12)


# A deep value is a marker in the Python value (a private-use character that SAFE_TEXT never
# draws), replaced by deep_text() once encoded.
DEEP = st.builds(lambda d, k: f"\ue000DEEP-{d}-{k}\ue000", st.sampled_from([50, 500, 990, 1000, 5000, 20000]), st.sampled_from(["list", "dict"]))
_MARKER = re.compile(r'"(?:\ue000|\\ue000)DEEP-(\d+)-(list|dict)(?:\ue000|\\ue000)"')


def _encode(msg: Any, *, ensure_ascii: bool = True) -> str:
    return _MARKER.sub(lambda m: deep_text(int(m[1]), m[2]), json.dumps(msg, ensure_ascii=ensure_ascii))


LONG = st.builds(lambda n, ch: ch * n, st.sampled_from([129, 1025, 2049, 10_000, 60_000]), st.sampled_from(["x", "é", "🙂"]))
ODD = st.one_of(SCALARS, JSON, HUGE_INTS, DEEP, LONG)


def _rep_templates() -> list[dict[str, Any]]:
    args = {
        "accept": {"session": "S1"}, "accept_invitation": {"invitation": "I1"}, "get_next": {},
        "transfer": {"session": "S1", "target": "team:hw", "note": "n", "stay": False}, "share": {"session": "S1", "target": "rep:alice"},
        "hold": {"session": "S1"}, "end": {"session": "S2"}, "leave": {"session": "S1"},
        "say": {"session": "S1", "text": "hello", "reps_only": True}, "set_external_key": {"session": "S1", "external_key": "K"},
        "generate_key": {"valid_for": 60}, "set_status": {"status": "busy"}, "team_say": {"team": "bill", "text": "hi"},
        "team_read": {"team": "bill", "upto": 1},
        "accept_offer": {"session": "S1"}, "decline_offer": {"session": "S1"}, "pause_offers": {"minutes": 5},
    }  # fmt: skip
    assert set(args) == set(COMMANDS)
    return [
        msgspec.to_builtins(message)
        for message in (
            Login(1, "nobody-fuzz", "not the password", PROTOCOL_VERSION),
            Resume(2, "A" * 32, 0, PROTOCOL_VERSION),
            Logout(3),
            *(Command(f"c-{name}", name, a) for name, a in args.items()),
        )
    ]


def _customer_templates() -> list[dict[str, Any]]:
    intake = IntakeMessage("Fuzz Customer", company="Acme", details="d", custom_fields={"k": "v"}, priority=Priority.NORMAL)
    return [
        msgspec.to_builtins(message)
        for message in (
            Start(1, Via.ISSUE, intake, issue="vpn"),
            Start(2, Via.KEY, intake, key="ABC-DEF-G"),
            Start(3, Via.REP, intake, rep="carol"),
            Start(4, Via.BUTTON, intake, button="btn-net"),
            Start(5, Via.LINK, intake, link="link-bill", page_url="https://a.example/", page_html="<p>hi</p>"),
            CustomerResume(6, "B" * 32, 0),
            Say(7, "hello"),
            Leave(8),
        )
    ]


@st.composite
def _mutated(draw: st.DrawFn, templates: list[dict[str, Any]]) -> str:
    msg = json.loads(json.dumps(draw(st.sampled_from(templates))))
    for _ in range(draw(st.integers(0, 3))):
        # Mutate the message or one of its nested objects.
        target = msg
        nested = [v for v in msg.values() if isinstance(v, dict)]
        if nested and draw(st.booleans()):
            target = draw(st.sampled_from(nested))
        op = draw(st.sampled_from(["drop", "add", "retype", "retype", "id"]))
        keys = sorted(target)
        if op == "drop" and keys:
            del target[draw(st.sampled_from(keys))]
        elif op == "add":
            target[draw(SAFE_TEXT)] = draw(ODD)
        elif op == "retype" and keys:
            target[draw(st.sampled_from(keys))] = draw(ODD)
        elif op == "id":
            msg["id"] = draw(st.one_of(SCALARS, HUGE_INTS, st.text(min_size=127, max_size=130)))
    return _encode(msg, ensure_ascii=draw(st.booleans()))


@st.composite
def _sized(draw: st.DrawFn, templates: list[dict[str, Any]]) -> str:
    """A valid-looking message padded to a size around the frame limit, in bytes."""
    msg = json.loads(json.dumps(draw(st.sampled_from(templates))))
    size = draw(st.sampled_from([MAX_FRAME - 2, MAX_FRAME - 1, MAX_FRAME, MAX_FRAME + 1, MAX_FRAME + 2, MAX_FRAME + 1000]))
    pad_char = draw(st.sampled_from(["x", "é", "€", "🙂"]))
    msg["pad"] = ""
    base = len(json.dumps(msg, ensure_ascii=False).encode())
    width = len(pad_char.encode())
    n, rest = divmod(size - base, width)
    msg["pad"] = pad_char * n + "y" * rest
    frame = json.dumps(msg, ensure_ascii=False)
    assert len(frame.encode()) == size
    return frame


def frames(templates: list[dict[str, Any]]) -> st.SearchStrategy[list[str | bytes]]:
    one = st.one_of(
        st.binary(max_size=300),
        SAFE_TEXT,
        JSON.map(_encode),
        st.builds(lambda v: _encode({"type": COMMAND, "id": 9, "name": "say", "args": v}), DEEP),
        _mutated(templates),
        _mutated(templates),
        _mutated(templates),
        _sized(templates),
    )
    return st.lists(one, min_size=1, max_size=4)


# ------------------------------------------------------------------ sending and checking


async def _exchange(c: RepClient | CustomerClient, frame: str | bytes, alts: list[Expect]) -> tuple[Expect, Any | None]:
    """Send one frame; read until its reply (and the close, if one should follow); return the outcome it matched, and the reply."""
    await c.ws.send(frame)
    reply: Any | None = None
    try:
        async with asyncio.timeout(5 * TIMEOUT_SCALE):
            if any(a.reply for a in alts):
                while reply is None:
                    msg = await c.pump(5)
                    if isinstance(msg, Error | Result | Welcome | Started):
                        reply = msg
                if any(a.close is not None for a in alts if a.reply and a.answers(reply)):
                    await c.closed_with(5)
            else:
                await c.closed_with(5)
    except ConnectionClosed:
        pass
    except TimeoutError:
        raise AssertionError(f"no reply to {frame[:300]!r}; expected one of {alts}") from None
    code = c.ws.close_code
    for a in alts:
        if a.matches(reply, code):
            if currently_in_test_context():
                event(f"{c.role}: " + (reply.reason if isinstance(reply, Error) else type(reply).__name__ if reply else f"close {code}"))
            return a, reply
    raise AssertionError(f"frame {frame[:300]!r}\n got {reply} (close {code})\n expected one of {alts}")


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _digest(frame: str | bytes) -> bytes:
    """What the server keeps of a command to tell a retry from a reused id."""
    try:
        msg = msgspec.json.decode(frame)
    except RecursionError:
        text = frame if isinstance(frame, str) else frame.decode()
        try:
            # Arguments nested too deep to encode (the generator writes them last): the server
            # digests their name alone (command_digest), as this does.
            msg = {"name": json.loads(re.sub(r',\s*"args".*', "}", text, flags=re.DOTALL))["name"], "args": _too_deep()}
        except RecursionError:
            # Nested too deep somewhere else (under a key of no message): the server refuses the
            # whole frame as bad_message, so no answer is stored under a digest of it.
            return b"nested too deep"
    return command_digest(msg["name"], msg.get("args", {}))


def _too_deep() -> list[Any]:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    return deep


@FUZZ
@given(batch=frames(_rep_templates()))
def test_rep_endpoint_before_login(harness: Harness, batch: list[str | bytes]) -> None:
    async def main() -> None:
        c = await RepClient.open(harness.server)
        for frame in batch:
            outcome, _ = await _exchange(c, frame, expect_rep(frame, logged_in=False))
            if outcome.close is not None:
                break
        await c.close()
        await harness.still_serving()

    harness.example(main())


@FUZZ
@given(batch=frames(_rep_templates()))
def test_rep_endpoint_after_login(harness: Harness, batch: list[str | bytes]) -> None:
    async def main() -> None:
        c = await harness.logged_in()
        for frame in batch:
            alts = expect_rep(frame, logged_in=True)
            command = next((a for a in alts if a.command), None)
            key = request_key(command.rid) if command is not None else ""
            hit = harness.answers.get(key)
            digest = _digest(frame) if command is not None else b""
            stored = None
            if command is not None and hit is not None:
                stored, answered = hit
                if answered == digest:
                    # A retry: the stored answer, whatever the command would get now.
                    reasons = frozenset({stored.reason}) if isinstance(stored, Error) else frozenset()
                    again = Expect(command.rid, reasons, ok=frozenset({type(stored)}), command=True)
                else:
                    # The id reused for another command: refused, and the stored answer kept.
                    stored = None
                    again = Expect(command.rid, frozenset({ErrorReason.ID_REUSED}), command=True)
                alts = [a for a in alts if not a.command] + [again]
            outcome, reply = await _exchange(c, frame, alts)
            if outcome.command and reply is not None:
                if stored is not None:
                    assert plain(reply) == plain(stored), (reply, stored)
                if hit is None:
                    harness.answers[key] = (reply, digest)
            if outcome.close is not None:
                if outcome.close == 4000:
                    harness.rep = None  # logged out: the next example logs in again
                break
        await c.close()
        await harness.still_serving()

    harness.example(main())


@FUZZ
@given(batch=frames(_customer_templates()), start_first=st.booleans())
def test_customer_endpoint(harness: Harness, batch: list[str | bytes], start_first: bool) -> None:
    async def main() -> None:
        c = await CustomerClient.open(harness.server)
        started = False
        if start_first:
            assert isinstance(await c.start("issue", "vpn", "Fuzz Starter"), Started)
            started = True
        for frame in batch:
            outcome, reply = await _exchange(c, frame, expect_customer(frame, started))
            if outcome.then == "started" and isinstance(reply, Started):
                started = True
            if outcome.close is not None:
                break
        await c.close()
        await harness.still_serving()

    harness.example(main())


# ------------------------------------------------------------------ fixed cases worth naming


@pytest.mark.parametrize("endpoint", ["rep", "rep-logged-in", "customer"])
@pytest.mark.parametrize("size", [MAX_FRAME, MAX_FRAME + 1])
def test_the_frame_limit_is_64_kib_exactly(harness: Harness, endpoint: str, size: int) -> None:
    async def main() -> None:
        if endpoint == "rep":
            c: Any = await RepClient.open(harness.server)
        elif endpoint == "rep-logged-in":
            c = await harness.logged_in()
        else:
            c = await CustomerClient.open(harness.server)
        # An id of its own: the fuzz examples before it may have had carol's login answer id 1 already
        # (a reuse would be refused with id_reused, not judged on its size).
        msg = {"type": SAY if endpoint == "customer" else COMMAND, "id": f"frame-limit-{size}", "name": "say", "args": {}, "text": ""}
        msg["text"] = "x" * (size - len(json.dumps(msg)))
        frame = json.dumps(msg)
        assert len(frame.encode()) == size
        alts = expect_customer(frame, False) if endpoint == "customer" else expect_rep(frame, endpoint != "rep")
        outcome, _ = await _exchange(c, frame, alts)
        assert (outcome.close == 1009) == (size > MAX_FRAME)
        await harness.still_serving()

    harness.example(main())


@pytest.mark.parametrize("depth", [100, 999, 1000, 5000, 30_000])
def test_deeply_nested_json_is_refused_not_fatal(harness: Harness, depth: int) -> None:
    """Valid JSON nested deeper than any message: an error reply, the connection stays open."""

    async def main() -> None:
        c = await harness.logged_in()
        deep = f'{{"type":"{COMMAND}","id":"deep","name":"say","args":{{"session":"S1","text":' + deep_text(depth, "list") + "}}"
        assert len(deep) <= MAX_FRAME
        outcome, _ = await _exchange(c, deep, expect_rep(deep, logged_in=True))
        assert outcome.close is None
        assert isinstance(await c.call("set_status", status="available"), Result)
        await c.close()
        await harness.still_serving()

    harness.example(main())


def test_a_huge_integer_argument_is_invalid_not_an_internal_error(harness: Harness) -> None:
    async def main() -> None:
        c = await harness.logged_in()
        for value in (10**400, -(10**400), 2**1024):
            reply = await c.call("generate_key", valid_for=value, valid=False)
            assert isinstance(reply, Error) and reply.reason == Reason.INVALID, reply
        await c.close()
        await harness.still_serving()

    harness.example(main())


def test_a_text_frame_that_is_not_utf8_closes_1007(harness: Harness) -> None:
    """WebSocket itself requires text frames to be UTF-8 (RFC 6455 §8.1): the close is 1007."""

    async def main() -> None:
        for endpoint in ("rep", "customer"):
            c: Any = await (RepClient if endpoint == "rep" else CustomerClient).open(harness.server)
            await c.ws.send(by_hand(type=SAY, id=1, text="@").encode().replace(b"@", b"\xff\xfe"), text=True)
            assert await c.closed_with() == 1007
        await harness.still_serving()

    harness.example(main())


def test_the_oracle_agrees_with_the_documented_examples() -> None:
    """The oracle itself, on the cases docs/protocol.md spells out."""
    assert expect_rep(b"{}", False)[0].reasons == {ErrorReason.BAD_MESSAGE}
    assert expect_rep("{not json", True)[0].rid is NO_ID
    assert expect_rep(by_hand(id=4, name="get_next"), True)[0].rid == 4
    assert expect_rep(by_hand(type="teleport", id=5), True)[0].reasons == {ErrorReason.UNKNOWN_TYPE}
    assert expect_rep(by_hand(type=COMMAND, id=5, name="get_next"), False)[0].reasons == {ErrorReason.NOT_LOGGED_IN}
    assert expect_rep(by_hand(type=COMMAND, id=True, name="get_next"), True)[0].rid is NO_ID
    infinite = by_hand(type=COMMAND, id=1, name="x", args={"a": math.inf}).replace("Infinity", "1e999")
    assert expect_rep(infinite, True)[0].rid is NO_ID
    assert expect_rep(wire(Logout(1)), True)[0].close == 4000
    assert expect_customer(wire(Say(1, "x")), False)[0].reasons == {ErrorReason.NOT_STARTED}
    assert expect_customer(by_hand(type=START, id=1, via="issue", issue="vpn", intake={}), True)[0].reasons == {ErrorReason.ALREADY_STARTED}
    # Versions (docs/protocol.md, Versions): absent means 1, which this server no longer speaks;
    # one the server does not speak closes 4426; 0 is no version.
    assert expect_rep(wire(Login(1, "a", "b"), omit=("protocol",)), False)[0].close == 4426
    assert expect_rep(wire(Login(1, "a", "b", PROTOCOL_VERSION)), False)[0].close == 4401
    for version in (1, 99):
        (refused,) = expect_rep(wire(Resume(1, "t", 0, version)), False)
        assert (refused.rid, refused.reasons, refused.close) == (1, {ErrorReason.UNSUPPORTED_PROTOCOL}, 4426)
    (bad,) = expect_rep(wire(Login(1, "a", "b", 0)), False)
    assert (bad.rid, bad.reasons, bad.close) == (1, {ErrorReason.BAD_MESSAGE}, None)
