"""Session keys: choosing how long a key stays valid, and showing the key.

A rep reads the key aloud over the phone, so :class:`SessionKeyDialog`
shows it large, in groups that are easy to say, with the time it stays
valid counting down (on the clock it is given: tests move time instead of
sleeping), a Copy button, and the customer's address with the key in it
when the console knows one (a server does; the simulator has no page).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from repconsole.protocol import KeyView

__all__ = ["KEY_VALIDITY", "KeyRequestDialog", "SessionKeyDialog", "fix_size", "spoken"]

KEY_VALIDITY = [("15 minutes", 900), ("1 hour", 3600), ("4 hours", 4 * 3600), ("24 hours", 86400)]


def spoken(key: str) -> str:
    """The key as it is read out: letters spaced, in groups of at most four."""
    groups = [key[i : i + 4] for i in range(0, len(key), 4)] if len(key) > 4 else [key]
    if len(groups) > 1 and len(groups[-1]) == 1:  # never a lone last character
        groups[-2:] = [groups[-2][:-1], groups[-2][-1] + groups[-1]]
    return "   ".join(" ".join(g) for g in groups)


def fix_size(dialog: QDialog, layout: QLayout, min_width: int) -> None:
    """Size a dialog once: its texts change later (the countdown) and must not change its size constraints once shown."""
    layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
    hint = layout.sizeHint()
    dialog.setMinimumSize(max(min_width, hint.width()), hint.height())
    dialog.resize(dialog.minimumSize())


def _left(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.999))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class KeyRequestDialog(QDialog):
    """Asks how long a new session key stays valid.

    Attributes:
        validity: the choice (seconds in its item data).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Generate session key")
        form = QFormLayout(self)
        self.validity = QComboBox()
        for label, seconds in KEY_VALIDITY:
            self.validity.addItem(label, seconds)
        self.validity.setCurrentIndex(1)
        form.addRow("Valid for:", self.validity)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Generate")
        form.addRow(buttons)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        fix_size(self, form, 300)

    def seconds(self) -> float:
        return float(self.validity.currentData())


class SessionKeyDialog(QDialog):
    """A generated key, big enough to read aloud, with its expiry counting down.

    Attributes:
        key: the key shown.
        url: the customer's address with the key, or None.
        key_label, spoken_label, expiry_label, url_field, copy_button, copy_url_button: its parts.
    """

    def __init__(self, key: KeyView, url: str | None, clock: Callable[[], float], parent: QWidget | None = None, *, local_offset: float = 0.0) -> None:
        super().__init__(parent)
        self.key = key
        self.url = url
        self._clock = clock
        # Server time minus local time: the "until" shown is the rep's wall clock.
        self._local_offset = local_offset
        self.setWindowTitle("Session key")
        self.setAccessibleName("Session key")
        layout = QVBoxLayout(self)
        intro = QLabel("Read this key to the customer. It starts one session, in your personal queue.")
        intro.setWordWrap(True)
        layout.addWidget(intro)

        self.key_label = QLabel(key.key)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setPointSizeF(max(28.0, font.pointSizeF() * 2.8))
        font.setWeight(QFont.Weight.Bold)
        font.setLetterSpacing(QFont.SpacingType.AbsoluteSpacing, 6)
        self.key_label.setFont(font)
        self.key_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.key_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.key_label.setAccessibleName("Session key")
        layout.addWidget(self.key_label)
        self.spoken_label = QLabel(f"Read it as: {spoken(key.key)}")
        self.spoken_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.spoken_label)
        self.expiry_label = QLabel()
        self.expiry_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        bold = QFont(self.expiry_label.font())
        bold.setBold(True)
        self.expiry_label.setFont(bold)
        layout.addWidget(self.expiry_label)

        row = QHBoxLayout()
        self.url_field = QLineEdit(url or "")
        self.url_field.setReadOnly(True)
        self.url_field.setAccessibleName("Customer's address")
        self.url_field.setMinimumWidth(360)
        self.copy_url_button = QPushButton("Copy &link")
        self.copy_url_button.clicked.connect(self._on_copy_url_button_clicked)
        row.addWidget(QLabel("Customer's page:"))
        row.addWidget(self.url_field, 1)
        row.addWidget(self.copy_url_button)
        if url is None:
            self.url_field.setText("")
            self.url_field.setPlaceholderText("no customer page: the simulator starts sessions by itself")
            self.copy_url_button.setEnabled(False)
        layout.addLayout(row)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.copy_button = buttons.addButton("&Copy key", QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self._on_copy_button_clicked)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.tick)
        self.tick()
        fix_size(self, layout, 460)

    def showEvent(self, event: QShowEvent) -> None:
        if not self.expired():
            self._timer.start()
        super().showEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:
        self._timer.stop()
        super().hideEvent(event)

    def expired(self) -> bool:
        return self._clock() >= self.key.expires_at

    def tick(self) -> None:
        """Show the time left (call once a second; the dialog's own timer does)."""
        left = self.key.expires_at - self._clock()
        if left <= 0:
            self.expiry_label.setText("Expired: generate a new key")
            self.key_label.setEnabled(False)
            self.copy_button.setEnabled(False)
            self.copy_url_button.setEnabled(False)
            self._timer.stop()
            return
        until = time.strftime("%H:%M", time.localtime(self.key.expires_at - self._local_offset))
        self.expiry_label.setText(f"Valid for {_left(left)} more (until {until})")

    def _on_copy_button_clicked(self) -> None:
        QGuiApplication.clipboard().setText(self.key.key)

    def _on_copy_url_button_clicked(self) -> None:
        if self.url:
            QGuiApplication.clipboard().setText(self.url)
