"""The sans-I/O protocol layer, and the schema that documents it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from server_helpers import schema_validator, validate

from repconsole.core.commands import COMMANDS
from repconsole.core.errors import CommandError, Reason
from repconsole.server.protocol import (
    CloseCode,
    Command,
    CustomerChat,
    CustomerResume,
    CustomerState,
    Error,
    ErrorReason,
    Login,
    Logout,
    ProtocolError,
    Result,
    Resume,
    ResumeReason,
    Say,
    Snapshot,
    Start,
    Started,
    Status,
    Via,
    Welcome,
    events_frame,
    parse_customer,
    parse_rep,
)


def test_rep_messages_parse_into_typed_messages() -> None:
    assert parse_rep('{"type":"login","id":1,"username":"alex","password":"pw"}') == Login(1, "alex", "pw")
    assert parse_rep('{"type":"resume","id":"r","token":"t","last_seq":5}') == Resume("r", "t", 5)
    assert parse_rep('{"type":"command","id":2,"name":"get_next"}') == Command(2, "get_next", {})
    assert parse_rep('{"type":"command","id":3,"name":"accept","args":{"session":"S1"},"extra":1}') == Command(3, "accept", {"session": "S1"})
    assert parse_rep('{"type":"logout","id":4}') == Logout(4)
    assert "pw" not in repr(parse_rep('{"type":"login","id":1,"username":"alex","password":"pw"}'))


@pytest.mark.parametrize(
    ("frame", "reason", "rid"),
    [
        ("", ErrorReason.BAD_MESSAGE, None),
        ("null", ErrorReason.BAD_MESSAGE, None),
        ('"text"', ErrorReason.BAD_MESSAGE, None),
        ('{"type":"login"}', ErrorReason.BAD_MESSAGE, None),
        ('{"type":"login","id":""}', ErrorReason.BAD_MESSAGE, None),
        ('{"type":"login","id":1.5}', ErrorReason.BAD_MESSAGE, None),
        ('{"type":"login","id":' + "9" * 30 + "}", ErrorReason.BAD_MESSAGE, None),
        ('{"type":"login","id":"' + "x" * 129 + '"}', ErrorReason.BAD_MESSAGE, None),
        ('{"type":7,"id":1}', ErrorReason.BAD_MESSAGE, 1),
        ('{"id":1}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"hello","id":1}', ErrorReason.UNKNOWN_TYPE, 1),
        ('{"type":"login","id":1,"username":"alex"}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"login","id":1,"username":"","password":"x"}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"login","id":1,"username":"a","password":"' + "x" * 1025 + '"}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"resume","id":1,"token":"t","last_seq":-1}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"resume","id":1,"token":"t","last_seq":true}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"command","id":1,"name":"x","args":null}', ErrorReason.BAD_MESSAGE, 1),
    ],
)
def test_unservable_frames_say_why_and_keep_the_id_when_readable(frame: str, reason: ErrorReason, rid: object) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_rep(frame)
    assert info.value.reason is reason and info.value.request_id == rid
    reply = json.loads(info.value.reply().serialize())
    assert reply["reason"] == reason.value and reply.get("id") == rid
    validate("rep_server", reply)


def test_binary_frames_are_not_messages() -> None:
    with pytest.raises(ProtocolError, match="text frames"):
        parse_rep(b'{"type":"logout","id":1}')


def test_customer_messages_parse() -> None:
    start = parse_customer('{"type":"start","id":1,"via":"key","key":"ABC","intake":{"customer_name":"A"}}')
    assert start == Start(1, Via.KEY, "ABC", {"customer_name": "A"})
    link = parse_customer('{"type":"start","id":1,"via":"link","link":"l","intake":{},"page_url":"u","page_html":"<p>"}')
    assert (link.page_url, link.page_html) == ("u", "<p>")
    assert parse_customer('{"type":"resume","id":2,"token":"t"}') == CustomerResume(2, "t", 0)
    assert parse_customer('{"type":"say","id":3,"text":"hi"}') == Say(3, "hi")
    for bad in [
        '{"type":"start","id":1,"via":"fax","fax":"x","intake":{}}',
        '{"type":"start","id":1,"via":"key","intake":{}}',
        '{"type":"start","id":1,"via":"key","key":"K","intake":[]}',
        '{"type":"start","id":1,"via":"key","key":"K","intake":{},"page_url":"u"}',
        '{"type":"say","id":1,"text":5}',
    ]:
        with pytest.raises(ProtocolError) as info:
            parse_customer(bad)
        assert info.value.reason is ErrorReason.BAD_MESSAGE and info.value.request_id == 1


def test_outgoing_messages_match_the_schema() -> None:
    rep_out = [
        Welcome(1, "alex", "t" * 32, False, 2.0, 1.0, 300.0),
        Welcome("r", "alex", "t" * 32, False, 2.0, 1.0, 300.0, ResumeReason.OUTSIDE_RESUME_WINDOW),
        Result(2, {"last_read": 3}),
        Error.of(3, CommandError(Reason.ALREADY_TAKEN, "Already taken by Priya Raman.", by="priya")),
        Error.protocol(None, ErrorReason.BAD_MESSAGE),
    ]
    for message in rep_out:
        validate("rep_server", json.loads(message.serialize()))
    customer_out = [
        Started(1, "S1", "t" * 32),
        Status(CustomerState.WAITING, position=3),
        Status(CustomerState.WAITING, held=True),
        Status(CustomerState.ACTIVE, rep_name="Alex Morgan"),
        Status(CustomerState.ENDED, detail="customer left"),
        CustomerChat(1, 2.0, "rep", "Alex Morgan", "Hello"),
        CustomerChat(2, 3.0, None, None, "Alex Morgan joined."),
        Result(4, {}),
    ]
    for message in customer_out:
        validate("customer_server", json.loads(message.serialize()))
    assert json.loads(Snapshot(0, {"x": 1}).serialize()) == {"type": "snapshot", "seq": 0, "data": {"x": 1}}


def test_an_events_frame_is_the_encoded_events_joined() -> None:
    items = [b'{"seq":5,"kind":"key","data":{}}', b'{"seq":9,"kind":"rep","data":{}}']
    assert json.loads(events_frame(4, items)) == {"type": "events", "prev": 4, "events": [json.loads(i) for i in items]}
    assert json.loads(events_frame(4, [])) == {"type": "events", "prev": 4, "events": []}


def test_the_schema_names_every_reason_and_every_command() -> None:
    schema = schema_validator().schema
    reasons = set(schema["$defs"]["error"]["properties"]["reason"]["enum"])
    assert reasons == {r.value for r in Reason} | {r.value for r in ErrorReason}
    names = {c["properties"]["name"]["const"] for c in schema["$defs"]["command"]["oneOf"]}
    assert names == set(COMMANDS)
    for c in schema["$defs"]["command"]["oneOf"]:
        spec = COMMANDS[c["properties"]["name"]["const"]]
        args = c["properties"]["args"]
        assert set(args["required"]) == spec.required
        assert set(args["properties"]) == spec.required | spec.optional


def test_the_close_codes_table_lists_every_code_a_connection_may_be_closed_with() -> None:
    """docs/protocol.md's table: the server's own codes, and those websockets
    closes with for a frame it refuses (1002 protocol error, 1007 not UTF-8)."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text(encoding="utf-8")
    table = doc.split("## Close codes", 1)[1].split("\n## ", 1)[0]
    listed = {int(m) for m in re.findall(r"^\| (\d{4}) \|", table, flags=re.MULTILINE)}
    assert listed == {int(c) for c in CloseCode} | {1002, 1007}
