"""Start-up feedback: "Loading N customers" over the queue.

A big start (100,000 waiting) takes seconds before the queue can show.  The
window paints at once anyway, and :class:`LoadingOverlay` says over the
empty table how far the backend is (``Backend.add_loading_listener``),
until the first snapshot fills the queue.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QAbstractScrollArea, QFrame, QLabel, QProgressBar, QVBoxLayout

from repconsole.backend.base import Backend
from repconsole.core.feed import FeedBatch

__all__ = ["LoadingOverlay"]


class LoadingOverlay(QFrame):
    """A "Loading 100,000 customers…" card with a progress bar, centred over a view.

    Shown while the backend reports loading progress, hidden by the first
    batch the backend delivers (the snapshot: by then the window, which
    listens first, has filled the queue).  It overlays the view and never
    changes the layout.

    Attributes:
        label: the sentence.
        bar: the progress bar (customers loaded of the total).
    """

    def __init__(self, view: QAbstractScrollArea, backend: Backend) -> None:
        super().__init__(view)
        self.setObjectName("loadingOverlay")
        self._view = view
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.Window)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(18, 14, 18, 14)
        self.label = QLabel()
        self.label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.bar.setMinimumWidth(320)
        self.bar.setAccessibleName("Loading customers")
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        self.hide()
        view.installEventFilter(self)
        backend.add_loading_listener(self.set_progress)
        backend.add_event_listener(self._on_backend_events)

    def set_progress(self, done: int, total: int) -> None:
        """``done`` of ``total`` customers are loaded (``done == total``: now showing them)."""
        if done >= total:
            self.label.setText(f"Showing {total:,} customers…")
        else:
            self.label.setText(f"Loading {total:,} customers…")
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(min(done, total))
        self.bar.setFormat(f"{done:,} of {total:,}")
        if not self.isVisible():
            self.show()
            self.raise_()
        self._place()

    def _on_backend_events(self, batch: FeedBatch) -> None:
        if self.isVisible() and batch.prev is None:  # a snapshot: the queue is shown
            self.hide()

    def _place(self) -> None:
        self.adjustSize()
        area = self._view.rect()
        self.move(max(0, (area.width() - self.width()) // 2), max(0, (area.height() - self.height()) // 3))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._view and event.type() == QEvent.Type.Resize and self.isVisible():
            self._place()
        return super().eventFilter(watched, event)
