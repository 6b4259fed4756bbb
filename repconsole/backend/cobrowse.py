"""Co-browsing as a backend delivers it: the customer's page stream, per session.

The wire (:mod:`repconsole.protocol.cobrowse`) cuts each batch of rrweb
events into parts; a backend joins them and hands its co-browse listeners
whole batches (:class:`PageBatch`) and the stream's state
(:class:`PageStatus`).  The console never looks inside a batch: it is the
text of a JSON array of rrweb events, for the replayer.

Qt-free.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from repconsole.protocol import CobrowseChunk, CobrowseState, CobrowseStatus

__all__ = ["ChunkJoiner", "CobrowseListener", "CobrowseUpdate", "PageBatch", "PageState", "PageStatus"]

log = logging.getLogger(__name__)


class PageState(enum.StrEnum):
    """The protocol's :class:`~repconsole.protocol.CobrowseState`, and one only the console knows.

    ``reconnecting``: the console's connection to the server is down; the
    page shown is the last one received, and the stream is watched again
    (from a fresh snapshot) once the connection is back.
    """

    WAITING = CobrowseState.WAITING.value
    LIVE = CobrowseState.LIVE.value
    RESYNC = CobrowseState.RESYNC.value
    STOPPED = CobrowseState.STOPPED.value
    ENDED = CobrowseState.ENDED.value
    RECONNECTING = "reconnecting"


@dataclass(frozen=True, slots=True)
class PageBatch:
    """A whole batch of the customer's page events.

    Attributes:
        session: the session whose page it is.
        events: the text of a JSON array of rrweb events, as the customer's
            recorder sent it (the first batches after a watch carry the
            page's Meta and FullSnapshot).
        at: when the server received it, on the server's clock
            (:attr:`repconsole.backend.Backend.clock_offset` relates it to this machine's).
        buffered: it came from the relay's buffer when the watch began: ``at``
            says how old the page is, not how late the batch came.
    """

    session: str
    events: str = field(repr=False)
    at: float
    buffered: bool = False


@dataclass(frozen=True, slots=True)
class PageStatus:
    """Where a watched session's page stream stands, and where the customer is.

    ``url`` and ``title`` are empty when not known (e.g. while reconnecting:
    the last known ones still hold).
    """

    session: str
    state: PageState
    url: str = ""
    title: str = ""
    detail: str = ""

    @classmethod
    def of(cls, status: CobrowseStatus) -> PageStatus:
        detail = status.detail if isinstance(status.detail, str) else ""
        return cls(status.session, PageState(status.state.value), status.url, status.title, detail)


CobrowseUpdate = PageBatch | PageStatus
CobrowseListener = Callable[[CobrowseUpdate], None]


@dataclass(slots=True)
class _Assembly:
    batch: int
    parts: int
    at: float
    data: dict[int, str]


class ChunkJoiner:
    """Joins the parts of each session's batches; drops a batch that cannot complete.

    A session's parts arrive in order on one connection, so a part of a
    newer batch while an older one still lacks parts means those parts are
    lost: the older batch is dropped and ``on_drop(session, batch)`` is told,
    so that the stream can be resynchronised (a page missing a change is
    wrong until its next full snapshot).
    """

    def __init__(self, on_drop: Callable[[str, int], None]) -> None:
        self._on_drop = on_drop
        self._open: dict[str, _Assembly] = {}

    def add(self, chunk: CobrowseChunk) -> PageBatch | None:
        """The batch ``chunk`` completes, or None while parts are missing."""
        if chunk.parts < 1 or not 0 <= chunk.part < chunk.parts:
            log.warning("a co-browse chunk of session %s with part %d of %d", chunk.session, chunk.part, chunk.parts)
            self._drop(chunk.session, chunk.batch)
            return None
        if chunk.parts == 1:
            self._drop(chunk.session)  # a whole batch: any older one still open is lost
            return PageBatch(chunk.session, chunk.data, chunk.at)
        open_ = self._open.get(chunk.session)
        if open_ is not None and (open_.batch != chunk.batch or open_.parts != chunk.parts):
            self._drop(chunk.session)
            open_ = None
        if open_ is None:
            open_ = self._open[chunk.session] = _Assembly(chunk.batch, chunk.parts, chunk.at, {})
        open_.data[chunk.part] = chunk.data
        if len(open_.data) < open_.parts:
            return None
        del self._open[chunk.session]
        return PageBatch(chunk.session, "".join(open_.data[i] for i in range(open_.parts)), open_.at)

    def forget(self, session: str | None = None) -> None:
        """Forget the open batches of ``session`` (of every session by default), silently: the stream restarts."""
        if session is None:
            self._open.clear()
        else:
            self._open.pop(session, None)

    def _drop(self, session: str, batch: int | None = None) -> None:
        open_ = self._open.pop(session, None)
        if open_ is not None:
            batch = open_.batch
            log.warning("dropping batch %d of session %s: %d of its %d parts arrived", batch, session, len(open_.data), open_.parts)
        if batch is not None:
            self._on_drop(session, batch)
