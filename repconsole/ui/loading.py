"""Start-up feedback: "Loading N customers" while a big start fills the queue.

A big start (100,000 waiting) takes seconds before every customer is there.
The window paints at once anyway: the backend delivers its snapshot early
and the rest as *backfill* batches (:attr:`~repconsole.core.feed.FeedBatch.backfill`),
so rows appear slice by slice, and :class:`LoadingOverlay` says how far it
is (``Backend.add_loading_listener``) until every customer is shown.

:class:`LoopWatch` measures what the rep feels meanwhile: the longest time
the event loop did not turn (a frozen frame).  The console prints it when
``REPCONSOLE_LOOP_WATCH`` is set (the start-up benchmark does).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QAbstractItemView, QBoxLayout, QFrame, QLabel, QProgressBar

from repconsole.backend.base import Backend
from repconsole.core.feed import FeedBatch

__all__ = ["LoadingOverlay", "LoopWatch"]

# Margin between the strip and the edges of the table's viewport.
_MARGIN = 6


class LoadingOverlay(QFrame):
    """A "Loading 100,000 customers…" progress bar over a view, while a big start fills it.

    While the view has no rows it is a card in the middle of the empty
    table.  Once rows show it becomes a slim strip along the bottom of the
    viewport (as the alert banner floats there), so the rows already
    shown can be read, sorted, searched and selected above it for the few
    seconds the rest take.  It overlays the view and never changes the
    layout: no row moves for it.  It hides when every customer is there
    (``done >= total``).

    Signals:
        filled(): the backend has delivered every customer of a big start
            (after the batch that completed it was applied).
        fillingChanged(): :attr:`filling` changed (a big start began, or
            filled the queue: after ``filled``).

    Attributes:
        label: the sentence.
        bar: the progress bar (customers loaded of the total).
        filling: a big start is delivering its customers (the queue is not complete yet).
    """

    filled = Signal()
    fillingChanged = Signal()

    def __init__(self, view: QAbstractItemView, backend: Backend) -> None:
        super().__init__(view)
        self.setObjectName("loadingOverlay")
        self._view = view
        self.filling = False
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.Window)
        self._layout = QBoxLayout(QBoxLayout.Direction.TopToBottom, self)
        self.label = QLabel()
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.bar.setAccessibleName("Loading customers")
        self._layout.addWidget(self.label)
        self._layout.addWidget(self.bar, 1)
        self._strip: bool | None = None
        self._as_strip(False)
        self.hide()
        view.installEventFilter(self)
        backend.add_loading_listener(self.set_progress)
        backend.add_event_listener(self._on_backend_events)

    def set_progress(self, done: int, total: int) -> None:
        """``done`` of ``total`` customers are delivered; ``done >= total``: all of them, it hides."""
        if done >= total:
            self.hide()
            if self.filling:
                self.filling = False
                self._view.viewport().update()  # the queue paints complete (the window's firstQueuePainted)
                self.filled.emit()
                self.fillingChanged.emit()
            return
        if not self.filling:
            self.filling = True
            self.fillingChanged.emit()
        self.label.setText(f"Loading {total:,} customers…")
        # A progress bar repaints at once on every new value; with the next frame is soon enough.
        self.bar.setUpdatesEnabled(False)
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(min(done, total))
        self.bar.setFormat(f"{done:,} of {total:,}")
        self.bar.setUpdatesEnabled(True)
        self.bar.update()
        if not self.isVisible():
            self.show()
            self.raise_()
        self._place()

    def _on_backend_events(self, batch: FeedBatch) -> None:
        if not self.isVisible():
            return
        if self.filling:
            self._place()  # rows may have appeared: the card becomes a strip
        elif batch.prev is None:
            self.hide()  # a snapshot of everything (a backend that reported progress but not the end)

    def _as_strip(self, strip: bool) -> None:
        if strip == self._strip:
            return
        self._strip = strip
        if strip:
            self._layout.setDirection(QBoxLayout.Direction.LeftToRight)
            self._layout.setContentsMargins(10, 3, 10, 3)
            self.bar.setMinimumWidth(160)
        else:
            self._layout.setDirection(QBoxLayout.Direction.TopToBottom)
            self._layout.setContentsMargins(18, 14, 18, 14)
            self.bar.setMinimumWidth(320)

    def _place(self) -> None:
        model = self._view.model()
        self._as_strip(model is not None and model.rowCount() > 0)
        viewport = self._view.viewport().geometry()
        if self._strip:
            height = self.sizeHint().height()
            width = max(0, viewport.width() - 2 * _MARGIN)
            self.setGeometry(viewport.left() + _MARGIN, viewport.bottom() - height - _MARGIN + 1, width, height)
        else:
            self.adjustSize()
            area = self._view.rect()
            self.move(max(0, (area.width() - self.width()) // 2), max(0, (area.height() - self.height()) // 3))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._view and event.type() == QEvent.Type.Resize and self.isVisible():
            # After the view has laid out its viewport (a filter sees the resize first).
            QTimer.singleShot(0, self, self._place)
        return super().eventFilter(watched, event)


class LoopWatch(QObject):
    """The longest time the event loop did not turn, while it watches.

    A heartbeat timer beats every ``interval_ms``; a gap between two beats
    is a loop turn that kept the loop (the window could not paint nor
    answer input), plus up to one interval.  Cheap enough to leave on for
    a start: a few hundred beats.

    Attributes:
        longest: the longest gap between two beats so far, in seconds.
        beats: how many beats were seen.
    """

    def __init__(self, parent: QObject | None = None, *, interval_ms: int = 10, clock: Callable[[], float] = time.perf_counter) -> None:
        super().__init__(parent)
        self._clock = clock
        self._last: float | None = None
        self.longest = 0.0
        self.beats = 0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._on_timer_timeout)

    def start(self) -> None:
        self._last = self._clock()
        self._timer.start()

    def stop(self) -> float:
        """Stop watching; the longest gap, in seconds (counting the one up to now)."""
        if self._timer.isActive():
            self._on_timer_timeout()
            self._timer.stop()
        self._last = None
        return self.longest

    def _on_timer_timeout(self) -> None:
        now = self._clock()
        if self._last is not None:
            self.longest = max(self.longest, now - self._last)
        self._last = now
        self.beats += 1
