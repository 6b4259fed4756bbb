"""The protocol package: messages parse and encode as documented, the schema and the docs keep up.

Two tests guard the promise that the wire is defined once:

* the committed docs/protocol.schema.json is exactly what
  ``python -m repconsole.protocol schema`` generates (``make schema``);
* docs/protocol.md names every message type, event kind, command, error
  reason and close code the package defines.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from server_helpers import schema_validator, validate

from repconsole.core.errors import CommandError, Reason
from repconsole.protocol import (
    COBROWSE_COMMANDS,
    COMMANDS,
    SNIPPET_COMMANDS,
    CloseCode,
    CobrowseName,
    Command,
    CommandName,
    CustomerLine,
    CustomerResume,
    CustomerState,
    EmptyResult,
    Error,
    ErrorReason,
    EventKind,
    Events,
    KeyData,
    KeyEvent,
    KeyView,
    LastReadResult,
    Login,
    Logout,
    MessageType,
    ProtocolError,
    RepData,
    RepEvent,
    RepStatus,
    RepView,
    Result,
    Resume,
    ResumeReason,
    Say,
    SayResult,
    SnippetName,
    Start,
    Started,
    Status,
    Via,
    Welcome,
    encode,
    events_frame,
    parse_customer,
    parse_customer_reply,
    parse_rep,
    parse_rep_reply,
)
from repconsole.protocol.__main__ import main as protocol_main
from repconsole.protocol.schema import schema_text

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "protocol.md"
SCHEMA_FILE = ROOT / "docs" / "protocol.schema.json"


def _dict(message: Any) -> Any:
    return json.loads(encode(message))


# ----------------------------------------------------------------- drift


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(), "docs/protocol.schema.json is stale: run `make schema`"


def test_the_schema_check_fails_on_a_drifted_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    drifted = tmp_path / "protocol.schema.json"
    drifted.write_text(schema_text().replace('"welcome"', '"welcom"', 1), encoding="utf-8")
    assert protocol_main(["schema", "--check", "--path", str(drifted)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert protocol_main(["schema", "--write", "--path", str(drifted)]) == 0
    assert protocol_main(["schema", "--check", "--path", str(drifted)]) == 0


def test_the_schema_module_runs_as_a_program() -> None:
    out = subprocess.run([sys.executable, "-m", "repconsole.protocol", "schema"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["$defs"]["rep_client"]


def _documented(values: set[str], doc: str) -> set[str]:
    """The values ``doc`` does not name in backticks (`x`) or as a JSON string ("x")."""
    return {v for v in values if f"`{v}`" not in doc and f'"{v}"' not in doc}


def test_the_docs_name_every_message_event_command_and_reason() -> None:
    doc = DOCS.read_text(encoding="utf-8")
    assert _documented({t.value for t in MessageType}, doc) == set()
    assert _documented({k.value for k in EventKind}, doc) == set()
    assert _documented({c.value for c in CommandName} | {c.value for c in CobrowseName} | {c.value for c in SnippetName}, doc) == set()
    assert _documented({r.value for r in Reason} | {r.value for r in ErrorReason}, doc) == set()
    assert _documented({r.value for r in ResumeReason}, doc) == set()


def test_the_docs_coverage_check_can_fail() -> None:
    doc = DOCS.read_text(encoding="utf-8").replace("`team_read`", "`team-read`").replace('"team_read"', '"team-read"')
    assert _documented({k.value for k in EventKind}, doc) == {"team_read"}


def test_the_close_codes_table_lists_every_code_a_connection_may_be_closed_with() -> None:
    doc = DOCS.read_text(encoding="utf-8")
    table = doc.split("## Close codes", 1)[1].split("\n## ", 1)[0]
    listed = {int(m) for m in re.findall(r"^\| (\d{4}) \|", table, flags=re.MULTILINE)}
    assert listed == {int(c) for c in CloseCode}


def test_the_schema_names_every_reason_and_every_command() -> None:
    schema = schema_validator().schema
    defs = schema["$defs"]
    assert set(defs["Error"]["properties"]["reason"]["enum"]) == {r.value for r in Reason} | {r.value for r in ErrorReason}
    variants = defs["Command"]["oneOf"]
    specs = {**COMMANDS, **COBROWSE_COMMANDS, **SNIPPET_COMMANDS}
    assert {v["properties"]["name"]["const"] for v in variants} == set(specs)
    for v in variants:
        spec = specs[v["properties"]["name"]["const"]]
        args = defs[v["properties"]["args"]["$ref"].rsplit("/", 1)[1]]
        fields = msgspec.structs.fields(spec.args)
        assert set(args.get("required", ())) == {f.name for f in fields if f.required}
        assert set(args["properties"]) == {f.name for f in fields}
        assert args["additionalProperties"] is False


# --------------------------------------------------------- rep endpoint


def test_rep_messages_parse_into_typed_messages() -> None:
    def frame(message: Any) -> str:
        return encode(message).decode()

    assert parse_rep(frame(Login(1, "alex", "pw"))) == Login(1, "alex", "pw")
    assert parse_rep(frame(Resume("r", "t", 5))) == Resume("r", "t", 5)
    assert parse_rep('{"type":"' + MessageType.COMMAND + '","id":2,"name":"get_next"}') == Command(2, "get_next", {})
    extra = '{"type":"' + MessageType.COMMAND + '","id":3,"name":"accept","args":{"session":"S1"},"extra":1}'
    assert parse_rep(extra) == Command(3, "accept", {"session": "S1"})
    assert parse_rep(frame(Logout(4))) == Logout(4)
    assert "pw" not in repr(parse_rep(frame(Login(1, "alex", "pw"))))
    assert parse_rep(frame(Login(1, "alex", "pw", 7))).protocol == 7
    assert parse_rep(frame(Login(1, "alex", "pw"))).protocol == 1  # absent: version 1


@pytest.mark.parametrize(
    ("frame", "reason", "rid"),
    [
        ("", ErrorReason.BAD_MESSAGE, None),
        ("null", ErrorReason.BAD_MESSAGE, None),
        ('"text"', ErrorReason.BAD_MESSAGE, None),
        ('{"type":"' + MessageType.LOGIN + '"}', ErrorReason.BAD_MESSAGE, None),
        ('{"type":"' + MessageType.LOGIN + '","id":""}', ErrorReason.BAD_MESSAGE, None),
        ('{"type":"' + MessageType.LOGIN + '","id":1.5}', ErrorReason.BAD_MESSAGE, None),
        ('{"type":"' + MessageType.LOGIN + '","id":' + "9" * 30 + "}", ErrorReason.BAD_MESSAGE, None),
        ('{"type":"' + MessageType.LOGIN + '","id":"' + "x" * 129 + '"}', ErrorReason.BAD_MESSAGE, None),
        ('{"type":7,"id":1}', ErrorReason.BAD_MESSAGE, 1),
        ('{"id":1}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"hello","id":1}', ErrorReason.UNKNOWN_TYPE, 1),
        ('{"type":"' + MessageType.LOGIN + '","id":1,"username":"alex"}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"' + MessageType.LOGIN + '","id":1,"username":"","password":"x"}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"' + MessageType.LOGIN + '","id":1,"username":"a","password":"' + "x" * 1025 + '"}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"' + MessageType.LOGIN + '","id":1,"username":"a","password":"x","protocol":0}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"' + MessageType.RESUME + '","id":1,"token":"t","last_seq":-1}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"' + MessageType.RESUME + '","id":1,"token":"t","last_seq":true}', ErrorReason.BAD_MESSAGE, 1),
        ('{"type":"' + MessageType.COMMAND + '","id":1,"name":"x","args":null}', ErrorReason.BAD_MESSAGE, 1),
        ("[" * 5000 + "]" * 5000, ErrorReason.BAD_MESSAGE, None),
    ],
)
def test_unservable_frames_say_why_and_keep_the_id_when_readable(frame: str, reason: ErrorReason, rid: object) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_rep(frame)
    assert info.value.reason is reason and info.value.request_id == rid
    reply = _dict(info.value.reply())
    assert reply["reason"] == reason.value and reply.get("id") == rid
    validate("rep_server", reply)


def test_binary_frames_are_not_messages() -> None:
    with pytest.raises(ProtocolError, match="text frames"):
        parse_rep(encode(Logout(1)))


def test_outgoing_rep_messages_match_the_schema_and_parse_back() -> None:
    rep = RepView("alex", "Alex", ["net"], RepStatus.AVAILABLE, 5, True, None)
    key = KeyView("K7QXT9A", "alex", 1.0, 2.0, None)
    out = [
        Welcome(1, "alex", "t" * 32, False, 2.0, 1.0, 300.0, 1),
        Welcome("r", "alex", "t" * 32, False, 2.0, 1.0, 300.0, 1, ResumeReason.OUTSIDE_RESUME_WINDOW),
        Result(2, msgspec.Raw(encode(LastReadResult(3)))),
        Error(id=3, reason=Reason.ALREADY_TAKEN, detail="Already taken by Priya Raman.", data={"by": "priya"}),
        ProtocolError(ErrorReason.BAD_MESSAGE, "bad").reply(),
        Events(4, [RepEvent(5, RepData(rep)), KeyEvent(9, KeyData(key))]),
    ]
    for message in out:
        validate("rep_server", _dict(message))
        back = parse_rep_reply(encode(message))
        assert encode(back) == encode(message)
    assert "t" * 32 not in repr(out[0])
    assert "id" not in _dict(out[4])  # no id: the request's could not be read
    assert "reason" not in _dict(out[0])  # absent unless a resume fell back to a snapshot


def test_an_events_frame_is_the_encoded_events_joined() -> None:
    rep = RepView("alex", "Alex", [], RepStatus.AWAY, 5, True, None)
    events = [RepEvent(5, RepData(rep)), KeyEvent(9, KeyData(KeyView("K", "alex", 1.0, 2.0, None)))]
    assert events_frame(4, [encode(e) for e in events]) == encode(Events(4, events))
    assert events_frame(4, []) == encode(Events(4, []))


def test_a_command_error_carries_the_engine_refusal() -> None:
    exc = CommandError(Reason.ALREADY_TAKEN, "Already taken by Priya Raman.", by="priya")
    error = Error(id=7, reason=exc.reason, detail=exc.detail, data=exc.data)
    assert _dict(error) == {
        "type": MessageType.ERROR, "id": 7, "reason": "already_taken", "detail": "Already taken by Priya Raman.", "data": {"by": "priya"},
    }  # fmt: skip


def test_every_command_has_typed_arguments_and_result() -> None:
    for name, spec in COMMANDS.items():
        assert CommandName(name) is spec.name
        assert issubclass(spec.args, msgspec.Struct) and issubclass(spec.result, msgspec.Struct)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        COMMANDS["transfer"].convert_args({"session": "S1", "target": "team:net", "sty": True})
    with pytest.raises(msgspec.ValidationError):
        COMMANDS["generate_key"].convert_args({"valid_for": True})


# ------------------------------------------------------ customer endpoint


def test_customer_messages_parse() -> None:
    start = parse_customer('{"type":"' + MessageType.START + '","id":1,"via":"key","key":"ABC","intake":{"customer_name":"A"}}')
    assert isinstance(start, Start) and (start.via, start.target, start.intake.customer_name) == (Via.KEY, "ABC", "A")
    link = parse_customer('{"type":"' + MessageType.START + '","id":1,"via":"link","link":"l","intake":{"customer_name":"A"},"page_url":"u","page_html":"<p>"}')
    assert isinstance(link, Start) and (link.page_url, link.page_html) == ("u", "<p>")
    assert parse_customer('{"type":"' + MessageType.RESUME + '","id":2,"token":"t"}') == CustomerResume(2, "t", 0)
    assert parse_customer('{"type":"' + MessageType.SAY + '","id":3,"text":"hi"}') == Say(3, "hi")
    for bad in [
        '{"type":"' + MessageType.START + '","id":1,"via":"fax","fax":"x","intake":{}}',
        '{"type":"' + MessageType.START + '","id":1,"via":"key","intake":{"customer_name":"A"}}',
        '{"type":"' + MessageType.START + '","id":1,"via":"key","key":"K","intake":[]}',
        '{"type":"' + MessageType.START + '","id":1,"via":"key","key":"K","intake":{"customer_name":"A"},"page_url":"u"}',
        '{"type":"' + MessageType.SAY + '","id":1,"text":5}',
    ]:
        with pytest.raises(ProtocolError) as info:
            parse_customer(bad)
        assert info.value.reason is ErrorReason.BAD_MESSAGE and info.value.request_id == 1, bad


@pytest.mark.parametrize(
    ("intake", "field"),
    [
        ({}, "customer_name"),
        ({"customer_name": "A", "company": 5}, "company"),
        ({"customer_name": "A", "company": "c" * 101}, "company"),
        ({"customer_name": "A", "details": "d" * 1025}, "details"),
        ({"customer_name": "A", "priority": 9}, "priority"),
        ({"customer_name": "A", "favourite_colour": "teal"}, None),
    ],
)
def test_a_bad_intake_is_refused_as_the_engine_refuses_it(intake: dict[str, Any], field: str | None) -> None:
    frame = json.dumps({"type": MessageType.START, "id": 1, "via": "issue", "issue": "vpn", "intake": intake})
    with pytest.raises(ProtocolError) as info:
        parse_customer(frame)
    assert info.value.reason is Reason.INVALID and info.value.request_id == 1
    assert info.value.data == ({"field": field} if field else {})
    validate("customer_server", _dict(info.value.reply()))


def test_outgoing_customer_messages_match_the_schema() -> None:
    out = [
        Started(1, "S1", "t" * 32, False),
        Status(CustomerState.WAITING, position=3),
        Status(CustomerState.WAITING, held=True),
        Status(CustomerState.ACTIVE, rep_name="Alex Morgan"),
        Status(CustomerState.ENDED, detail="customer left"),
        Result(4, msgspec.Raw(encode(SayResult(CustomerLine(1, 2.0, "rep", "Alex Morgan", "Hello"))))),
        Result(5, msgspec.Raw(encode(EmptyResult()))),
    ]
    for message in out:
        validate("customer_server", _dict(message))
        assert encode(parse_customer_reply(encode(message))) == encode(message)
    assert _dict(out[1]) == {"type": MessageType.STATUS, "state": "waiting", "position": 3}
    assert _dict(out[5])["result"] == {"line": {"n": 1, "at": 2.0, "author": "rep", "author_name": "Alex Morgan", "text": "Hello"}}
    assert _dict(out[6])["result"] == {}
