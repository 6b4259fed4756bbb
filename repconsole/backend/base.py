"""The interface between the console and whatever holds the truth.

A backend takes commands and delivers the rep's feed.  The console never
learns which backend it has: the in-process simulator and the WebSocket
client both implement :class:`Backend`, and the window only calls what is
here.

The contract:

* :meth:`Backend.start` connects (or builds its world) and delivers, through
  the event listeners, a first :class:`~repconsole.core.feed.FeedBatch` that
  starts with a :class:`~repconsole.protocol.Snapshot`.  Later batches carry
  the events after it, in order, each with ``prev``: the engine's number of
  the event before it, so that the console can prove nothing was lost.  A
  backend may send another snapshot at any time (after a resync); it
  replaces everything.
* A big start may deliver its snapshot early, with only part of what there
  is, and the rest as batches marked ``backfill``: what was already there,
  not news (no alerts), with progress reported to the loading listeners.
* Batches are delivered at most once per frame: a burst of a thousand
  engine events reaches the window as one call, so it repaints once.
* :meth:`Backend.call` runs a command and returns its result (the
  protocol's result Struct for that command), or raises
  :class:`~repconsole.core.errors.CommandError`.  The events the
  command caused arrive through the feed like any other.
* Co-browsing is a side channel beside the feed: after
  :meth:`Backend.cobrowse_watch`, the co-browse listeners receive the
  session's page stream in whole batches
  (:class:`~repconsole.backend.cobrowse.PageBatch`) and its state
  (:class:`~repconsole.backend.cobrowse.PageStatus`, the first one the
  watch's answer), until :meth:`Backend.cobrowse_unwatch`.
"""

from __future__ import annotations

import abc
import enum
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from repconsole.backend.cobrowse import CobrowseListener, CobrowseUpdate, PageState, PageStatus
from repconsole.core.errors import CommandError
from repconsole.core.feed import FeedBatch
from repconsole.protocol import (
    CobrowseName,
    CommandName,
    CommandResult,
    InvitationResult,
    InvitationView,
    KeyResult,
    KeyView,
    LastReadResult,
    LineResult,
    LineView,
    NoResult,
    OfferResult,
    OfferView,
    RepResult,
    RepView,
    SessionResult,
    SessionView,
    SnippetName,
    SnippetResult,
    Snippets,
    SnippetView,
    TicketResult,
    WatchResult,
)

__all__ = ["FRAME_SECONDS", "Backend", "BackendState", "EventListener", "LoadingListener", "StateListener"]

log = logging.getLogger(__name__)

# Feed batches are flushed at most this often: one repaint per frame.
FRAME_SECONDS = 1 / 60

EventListener = Callable[[FeedBatch], None]
_R = TypeVar("_R", bound=CommandResult)
StateListener = Callable[["BackendState", str], None]
#: ``(done, total)``: how far a big start is (customers delivered of all).
LoadingListener = Callable[[int, int], None]


class BackendState(enum.StrEnum):
    CONNECTING = "connecting"
    LIVE = "live"
    RECONNECTING = "reconnecting"  # the queue shown is stale until the next snapshot
    CLOSED = "closed"


class Backend(abc.ABC):
    """A source of queue truth for one rep's console.

    Attributes:
        kind: the factory name of this backend (``simulator``, ``server``).
        state: the connection state.
        state_detail: a sentence for the status bar about ``state``.
        clock_offset: the backend's clock minus this machine's, in seconds
            (co-browse batches are stamped on the backend's clock).
        watching: the sessions whose page the rep watches.
    """

    kind: ClassVar[str]

    def __init__(self) -> None:
        self.state = BackendState.CONNECTING
        self.state_detail = ""
        self.clock_offset = 0.0
        self.watching: set[str] = set()
        self._event_listeners: list[EventListener] = []
        self._state_listeners: list[StateListener] = []
        self._cobrowse_listeners: list[CobrowseListener] = []
        self._loading_listeners: list[LoadingListener] = []

    # ------------------------------------------------------------- listeners

    def add_event_listener(self, listener: EventListener) -> None:
        self._event_listeners.append(listener)

    def add_state_listener(self, listener: StateListener) -> None:
        self._state_listeners.append(listener)

    def add_cobrowse_listener(self, listener: CobrowseListener) -> None:
        """``listener`` receives the watched sessions' page batches and statuses."""
        self._cobrowse_listeners.append(listener)

    def add_loading_listener(self, listener: LoadingListener) -> None:
        """``listener`` hears how far a big start is, ``(done, total)``; ``done >= total``: complete.

        Only a start slow enough to show progress reports it (the
        simulator's big population).  It reports ``(0, total)`` before its
        snapshot, which then holds only part of what there is (possibly
        nobody), and delivers the rest as batches marked ``backfill``, each
        followed by a report, the last one ``(total, total)``.
        """
        self._loading_listeners.append(listener)

    def _set_loading(self, done: int, total: int) -> None:
        for listener in list(self._loading_listeners):
            listener(done, total)

    def _deliver_cobrowse(self, update: CobrowseUpdate) -> None:
        for listener in list(self._cobrowse_listeners):
            try:
                listener(update)
            except Exception:
                # A listener's bug must not stop the stream (nor the connection reading it).
                log.exception("a co-browse listener failed")

    def server_time(self) -> float:
        """Now, on the backend's clock."""
        return time.time() + self.clock_offset

    def _deliver(self, batch: FeedBatch) -> None:
        for listener in list(self._event_listeners):
            listener(batch)

    def _set_state(self, state: BackendState, detail: str = "") -> None:
        if (state, detail) == (self.state, self.state_detail):
            return
        self.state = state
        self.state_detail = detail
        log.info("backend %s: %s %s", self.kind, state.value, detail)
        for listener in list(self._state_listeners):
            listener(state, detail)

    # ------------------------------------------------------------- lifecycle

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """What the status bar says this backend is, e.g. ``Simulator``."""

    @property
    def where(self) -> str:
        """Where the rep is signed in, as the title bar says it: ``simulator`` or the server's address."""
        return "simulator"

    def customer_page(self, key: str | None = None) -> str | None:
        """The customer's support page (with the session ``key`` filled in), or None when there is none."""
        return None

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect; the first batch delivered starts with a snapshot."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Disconnect and stop delivering.  Safe to call twice."""

    @abc.abstractmethod
    async def call(self, command: str, **args: Any) -> CommandResult:
        """Run a rep command (a :class:`~repconsole.protocol.CommandName`).  Raises CommandError when refused."""

    @abc.abstractmethod
    def resync(self) -> None:
        """The console found a gap in its feed: deliver a fresh snapshot soon."""

    # ------------------------------------------------- typed command helpers
    # Thin by design: the protocol's command table is the single definition
    # of names, arguments and results.

    async def _call(self, name: CommandName | CobrowseName, result: type[_R], **args: Any) -> _R:
        reply = await self.call(name.value, **args)
        if not isinstance(reply, result):
            raise TypeError(f"{name.value} answered {type(reply).__name__}, not {result.__name__}")
        return reply

    async def accept(self, session_id: str) -> SessionView:
        return (await self._call(CommandName.ACCEPT, SessionResult, session=session_id)).session

    async def accept_invitation(self, invitation_id: str) -> SessionView:
        return (await self._call(CommandName.ACCEPT_INVITATION, SessionResult, invitation=invitation_id)).session

    async def get_next(self) -> SessionView:
        return (await self._call(CommandName.GET_NEXT, SessionResult)).session

    async def transfer(self, session_id: str, target: str, note: str = "", *, stay: bool = False) -> SessionView:
        return (await self._call(CommandName.TRANSFER, SessionResult, session=session_id, target=target, note=note, stay=stay)).session

    async def share(self, session_id: str, target: str) -> InvitationView:
        return (await self._call(CommandName.SHARE, InvitationResult, session=session_id, target=target)).invitation

    async def hold(self, session_id: str) -> SessionView:
        return (await self._call(CommandName.HOLD, SessionResult, session=session_id)).session

    async def end(self, session_id: str) -> SessionView:
        return (await self._call(CommandName.END, SessionResult, session=session_id)).session

    async def leave(self, session_id: str) -> SessionView:
        return (await self._call(CommandName.LEAVE, SessionResult, session=session_id)).session

    async def say(self, session_id: str, text: str, *, reps_only: bool = False) -> LineView:
        return (await self._call(CommandName.SAY, LineResult, session=session_id, text=text, reps_only=reps_only)).line

    async def team_say(self, team_id: str, text: str) -> LineView:
        return (await self._call(CommandName.TEAM_SAY, LineResult, team=team_id, text=text)).line

    async def team_read(self, team_id: str) -> int:
        return (await self._call(CommandName.TEAM_READ, LastReadResult, team=team_id)).last_read

    async def set_status(self, status: str) -> RepView:
        return (await self._call(CommandName.SET_STATUS, RepResult, status=status)).rep

    async def generate_key(self, valid_for: float) -> KeyView:
        return (await self._call(CommandName.GENERATE_KEY, KeyResult, valid_for=valid_for)).key

    async def set_external_key(self, session_id: str, external_key: str) -> SessionView:
        return (await self._call(CommandName.SET_EXTERNAL_KEY, SessionResult, session=session_id, external_key=external_key)).session

    # ------------------------------------------------------- auto-assignment (issue 14)

    async def accept_offer(self, session_id: str) -> SessionView:
        """Take the session offered to the rep: an accept, exactly once."""
        return (await self._call(CommandName.ACCEPT_OFFER, SessionResult, session=session_id)).session

    async def decline_offer(self, session_id: str) -> OfferView:
        """Decline the offer: the next rep is offered it, never this rep again."""
        return (await self._call(CommandName.DECLINE_OFFER, OfferResult, session=session_id)).offer

    async def pause_offers(self, minutes: float) -> RepView:
        """No offers for ``minutes`` (0: take them again now); they come back by themselves."""
        return (await self._call(CommandName.PAUSE_OFFERS, RepResult, minutes=minutes)).rep

    # ------------------------------------------------------------ co-browsing
    # The relay answers these, not the engine; see repconsole.protocol.cobrowse.

    async def cobrowse_watch(self, session_id: str) -> None:
        """Watch the customer's page of ``session_id``.

        Its state (the watch's answer, then every change) and its batches,
        the page's full snapshot first, come to the co-browse listeners.
        A backend that loses its connection keeps watching: it says
        ``reconnecting`` and watches again once back.  Raises CommandError
        when refused (the session is not the rep's, or not browser sharing).
        """
        self.watching.add(session_id)
        try:
            await self._watch(session_id)
        except CommandError:
            self.watching.discard(session_id)
            raise

    async def _watch(self, session_id: str) -> None:
        """Send the watch and tell the listeners its answer."""
        result = await self._call(CobrowseName.WATCH, WatchResult, session=session_id)
        if session_id in self.watching:  # not unwatched meanwhile
            self._deliver_cobrowse(PageStatus(session_id, PageState(result.state.value), result.url, result.title))

    async def cobrowse_unwatch(self, session_id: str) -> None:
        """Stop watching ``session_id``'s page; nothing more of it is delivered."""
        self.watching.discard(session_id)
        await self._call(CobrowseName.UNWATCH, NoResult, session=session_id)

    async def cobrowse_point(self, session_id: str, x: float, y: float) -> None:
        """Point at (``x``, ``y``) of the customer's page: CSS pixels from the document's top left."""
        await self._call(CobrowseName.POINT, NoResult, session=session_id, x=x, y=y)

    async def cobrowse_ticket(self, session_id: str) -> TicketResult:
        """A single-use address of the live view, to open in a web browser."""
        return await self._call(CobrowseName.TICKET, TicketResult, session=session_id)

    # --------------------------------------------------- typing (issue 14)

    # Made at the first add_typing_listener: most listeners are set up in __init__.
    _typing_listeners: list[Callable[[str], None]] | None = None

    def add_typing_listener(self, listener: Callable[[str], None]) -> None:
        """``listener(session_id)`` hears that the customer of a session the rep sees is typing.

        A transient beside the feed (docs/protocol.md, Typing): no event, no
        state; the listener shows it until the customer's line or 5 s of silence.
        """
        if self._typing_listeners is None:
            self._typing_listeners = []
        self._typing_listeners.append(listener)

    def _deliver_typing(self, session_id: str) -> None:
        for listener in list(self._typing_listeners or ()):
            listener(session_id)

    def typing(self, session_id: str) -> None:
        """Tell the customer of ``session_id`` that the rep is typing: fire and forget (the caller throttles).

        By default nobody is told (the simulator's customers do not read it).
        """
        del session_id

    # --------------------------------------------------- snippets (issue 14)

    # The rep's team snippets as last heard (None: none heard, e.g. a server of an older protocol).
    snippets: Snippets | None = None
    _snippet_listeners: list[Callable[[Snippets], None]] | None = None

    def add_snippet_listener(self, listener: Callable[[Snippets], None]) -> None:
        """``listener(snippets)`` hears the rep's whole set of team snippets, at sign-in and at each change."""
        if self._snippet_listeners is None:
            self._snippet_listeners = []
        self._snippet_listeners.append(listener)

    def _deliver_snippets(self, snippets: Snippets) -> None:
        self.snippets = snippets
        for listener in list(self._snippet_listeners or ()):
            listener(snippets)

    async def _snippet_call(self, command: SnippetName, **args: Any) -> CommandResult:
        # Not _call: its ``name`` parameter would take the snippet's.
        return await self.call(command.value, **args)

    async def snippet_add(self, team: str, name: str, text: str) -> SnippetView:
        reply = await self._snippet_call(SnippetName.ADD, team=team, name=name, text=text)
        assert isinstance(reply, SnippetResult), reply
        return reply.snippet

    async def snippet_edit(self, snippet_id: str, name: str, text: str) -> SnippetView:
        reply = await self._snippet_call(SnippetName.EDIT, id=snippet_id, name=name, text=text)
        assert isinstance(reply, SnippetResult), reply
        return reply.snippet

    async def snippet_delete(self, snippet_id: str) -> None:
        await self._snippet_call(SnippetName.DELETE, id=snippet_id)
