"""docs/protocol.schema.json, generated from the message Structs.

    python -m repconsole.protocol schema            # print it
    python -m repconsole.protocol schema --write    # write docs/protocol.schema.json
    python -m repconsole.protocol schema --check    # exit 1 if the committed file differs

A message is validated against ``#/$defs/rep_client``, ``rep_server``,
``customer_client`` or ``customer_server``.  msgspec writes the Structs'
schemas; this module adds what the Structs cannot say on their own: a
``command``'s ``args`` per command name, and a ``result``'s shape per request.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from repconsole.protocol.cobrowse import COBROWSE_COMMANDS, CobrowseSpec, RecorderReply, RecorderRequest
from repconsole.protocol.commands import COMMANDS, Args, CommandResult, CommandSpec
from repconsole.protocol.messages import CustomerReply, CustomerRequest, EmptyResult, Error, RepReply, RepRequest, SayResult
from repconsole.protocol.snippets import SNIPPET_COMMANDS
from repconsole.protocol.vocabulary import PROTOCOL_VERSION, MessageType

__all__ = ["SCHEMA_ID", "schema", "schema_text"]

SCHEMA_ID = "https://github.com/repconsole/repconsole/docs/protocol.schema.json"
_REF = "#/$defs/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(name=name)}


def schema() -> dict[str, Any]:
    """The protocol's JSON Schema (draft 2020-12), as a dict."""
    specs: dict[str, CommandSpec | CobrowseSpec] = {**COMMANDS, **COBROWSE_COMMANDS, **SNIPPET_COMMANDS}
    args_types: list[type[Args]] = sorted({spec.args for spec in specs.values()}, key=lambda t: t.__name__)
    result_types: list[type[CommandResult]] = sorted({spec.result for spec in specs.values()}, key=lambda t: t.__name__)
    roots: list[Any] = [
        RepRequest, RepReply, CustomerRequest, CustomerReply, RecorderRequest, RecorderReply | Error,
        SayResult, EmptyResult, *args_types, *result_types,
    ]  # fmt: skip
    (rep_client, rep_server, customer_client, customer_server, recorder_client, recorder_server, *_), defs = (
        msgspec.json.schema_components(roots, ref_template=_REF)
    )
    # A command's args, per command name: {"name": "transfer", "args": TransferArgs}.
    command = defs["Command"]
    command["oneOf"] = [
        {"properties": {"name": {"const": name}, "args": _ref(spec.args.__name__)}} for name, spec in sorted(specs.items())
    ]
    # A result: a command's result on /rep, SayResult or {} on /customer.
    defs["Result"]["properties"]["result"] = {
        "description": "the result of the request: the command's result type on /rep; SayResult or EmptyResult on /customer",
        "anyOf": [_ref(name) for name in (*(t.__name__ for t in result_types), SayResult.__name__, EmptyResult.__name__)],
    }
    defs |= {
        "rep_client": rep_client,
        "rep_server": rep_server,
        "customer_client": customer_client,
        "customer_server": customer_server,
        "recorder_client": recorder_client,
        "recorder_server": recorder_server,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"repconsole wire protocol v{PROTOCOL_VERSION}",
        "description": (
            "Generated from repconsole.protocol (python -m repconsole.protocol schema --write); do not edit. "
            "One WebSocket text frame is one message; validate it against #/$defs/rep_client, rep_server, "
            "customer_client, customer_server, recorder_client or recorder_server. Message types: " + ", ".join(t.value for t in MessageType) + "."
        ),
        "oneOf": [_ref(name) for name in ("rep_client", "rep_server", "customer_client", "customer_server", "recorder_client", "recorder_server")],
        "$defs": dict(sorted(defs.items())),
    }


def schema_text() -> str:
    """The schema as the committed file holds it."""
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"
