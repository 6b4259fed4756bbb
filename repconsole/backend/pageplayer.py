"""The simulator's customers' pages: a recorded rrweb stream, played live.

Every browser-sharing customer of the simulator is on the same page: the
demo shop, recorded by rrweb in a real browser (``resources/cobrowse/``).
:class:`PagePlayer` answers the ``cobrowse_*`` commands as the server's relay
would, and plays the recording to each watched session as if it happened
now: timestamps shifted to the present, in batches at the recorder's pace,
from its full snapshot, over and over.

Qt-free: asyncio only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec

from repconsole import resources
from repconsole.backend.cobrowse import CobrowseUpdate, PageBatch, PageState, PageStatus
from repconsole.core.engine import QueueEngine
from repconsole.core.errors import CommandError, Reason
from repconsole.protocol import (
    COBROWSE_COMMANDS,
    CobrowseName,
    CobrowseState,
    CommandResult,
    NoResult,
    PointArgs,
    RrwebType,
    WatchArgs,
    WatchResult,
    invalid_field,
)

__all__ = ["RECORDING", "PagePlayer", "Recording", "load_recording"]

log = logging.getLogger(__name__)

#: The recorded customer page every simulated browser-sharing customer is on.
RECORDING = "cobrowse/shop.rrweb.json"
#: Seconds between batches: about how often a recorder sends what it recorded.
FRAME = 0.1
#: Seconds between the end of the recording and its next start.
LOOP_PAUSE = 2.0

_recording = msgspec.json.Decoder(list[dict[str, Any]] | dict[str, Any])
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Recording:
    """A recorded rrweb stream: its events (the first full snapshot opens it), the page's address and title."""

    events: tuple[dict[str, Any], ...]
    url: str
    title: str

    @classmethod
    def parse(cls, data: bytes) -> Recording:
        """A recording from JSON: an array of rrweb events, or an object with ``events`` (and ``url``, ``title``)."""
        decoded = _recording.decode(data)
        meta: dict[str, Any] = decoded if isinstance(decoded, dict) else {}
        events: Any = decoded.get("events") if isinstance(decoded, dict) else decoded
        if not isinstance(events, list) or not all(isinstance(e, dict) and isinstance(e.get("timestamp"), int | float) for e in events):
            raise ValueError("a recording is a list of rrweb events, each with a timestamp")
        full = next((i for i, e in enumerate(events) if e.get("type") == RrwebType.FULL_SNAPSHOT), None)
        if full is None:
            raise ValueError("the recording has no full snapshot")
        href = next((e["data"].get("href", "") for e in events if e.get("type") == RrwebType.META), "")
        return cls(
            tuple(events),
            str(meta.get("url") or href),
            str(meta.get("title") or _title(events[full]["data"]["node"])),
        )

    @property
    def start(self) -> int:
        """Index of the first full snapshot: the events up to it are the page as it opens."""
        return next(i for i, e in enumerate(self.events) if e.get("type") == RrwebType.FULL_SNAPSHOT)


def _title(node: dict[str, Any]) -> str:
    """The text of the page's ``<title>`` in an rrweb serialized node tree, or empty."""

    def walk(n: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield n
        for child in n.get("childNodes", ()):
            yield from walk(child)

    for n in walk(node):
        if n.get("tagName") == "title":
            return "".join(c.get("textContent", "") for c in n.get("childNodes", ())).strip()
    return ""


@functools.cache
def load_recording(name: str = RECORDING) -> Recording:
    """The recording shipped as resource ``name`` (read once)."""
    return Recording.parse(resources.read_bytes(name))


class PagePlayer:
    """The simulator's co-browse relay: plays a recording live to each watched session.

    Attributes:
        engine: whose sessions may be watched (browser sharing, the rep's own).
        rep: the console's rep.
    """

    def __init__(
        self,
        engine: QueueEngine,
        rep: str,
        deliver: Callable[[CobrowseUpdate], None],
        clock: Callable[[], float],
        *,
        recording: Callable[[], Recording] = load_recording,
        frame: float = FRAME,
    ) -> None:
        self.engine = engine
        self.rep = rep
        self._deliver = deliver
        self._clock = clock
        self._recording = recording
        self._frame = frame
        self._playing: dict[str, asyncio.Task[None]] = {}

    @property
    def playing(self) -> frozenset[str]:
        """The sessions whose page streams now."""
        return frozenset(self._playing)

    def command(self, name: str, args: dict[str, Any]) -> CommandResult:
        """Answer a ``cobrowse_*`` command as the server's relay would.  Raises CommandError."""
        spec = COBROWSE_COMMANDS[name]
        try:
            converted = msgspec.convert(args, type=spec.args, strict=True)
        except msgspec.ValidationError as exc:
            field = invalid_field(exc)
            raise CommandError(Reason.INVALID, str(exc), command=name, **({"field": field} if field else {})) from None
        assert isinstance(converted, WatchArgs | PointArgs)
        session_id = converted.session
        if spec.name is CobrowseName.UNWATCH:
            self._stop(session_id)
            return NoResult()
        self._check(session_id)
        if spec.name is CobrowseName.WATCH:
            return self.watch(session_id)
        if spec.name is CobrowseName.POINT:
            return NoResult()  # the recorded customer does not see it
        raise CommandError(Reason.INVALID, "Opening the customer's page in a web browser is not available in the simulator.", command=name)

    def watch(self, session_id: str) -> WatchResult:
        """Play the page to ``session_id`` from its full snapshot (again, if it played already)."""
        recording = self._recording()
        self._stop(session_id)
        self._playing[session_id] = asyncio.get_running_loop().create_task(self._play(session_id, recording), name=f"page {session_id}")
        return WatchResult(CobrowseState.LIVE, recording.url, recording.title)

    def stop_sharing(self, session_id: str) -> None:
        """The customer pressed Stop: the session's page stops streaming."""
        self._stop(session_id)
        recording = self._recording()
        self._deliver(PageStatus(session_id, PageState.STOPPED, recording.url, recording.title))

    def close(self) -> None:
        for session_id in list(self._playing):
            self._stop(session_id)

    def _check(self, session_id: str) -> None:
        session = self.engine.session(session_id)  # raises for an unknown session
        if not session.browser:
            raise CommandError(Reason.NOT_BROWSER, "That session does not share a browser.")
        if session_id not in self.engine.involved(self.rep):
            raise CommandError(Reason.NOT_PARTICIPANT)

    def _stop(self, session_id: str) -> None:
        task = self._playing.pop(session_id, None)
        if task is not None:
            task.cancel()

    async def _play(self, session_id: str, recording: Recording) -> None:
        events, start = recording.events, recording.start
        try:
            while True:
                began = self._clock()
                # The opening events (up to the full snapshot) come at once, as
                # the relay's buffer does; the rest at their recorded pace.
                zero = events[start]["timestamp"]
                shift = round(began * 1000) - zero
                i = 0
                while i < len(events):
                    due = (self._clock() - began) * 1000 + zero
                    j = max(i + 1, start + 1) if i <= start else i
                    while j < len(events) and events[j]["timestamp"] <= due:
                        j += 1
                    if j > i:
                        batch = [{**e, "timestamp": max(e["timestamp"], zero) + shift} for e in events[i:j]]
                        self._deliver(PageBatch(session_id, _encoder.encode(batch).decode(), self._clock()))
                        i = j
                    if i < len(events):
                        wait = (events[i]["timestamp"] - zero) / 1000 - (self._clock() - began)
                        await asyncio.sleep(max(self._frame, wait))
                await asyncio.sleep(LOOP_PAUSE)
        except Exception:  # a bad recording must not take the console down
            log.exception("playing the customer's page to session %s failed", session_id)
        finally:
            with contextlib.suppress(KeyError):
                if self._playing[session_id] is asyncio.current_task():
                    del self._playing[session_id]
