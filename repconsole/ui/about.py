"""Help ▸ About: what this program is, which version, under what licence; diagnostics for support."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import PySide6
from PySide6.QtCore import Qt, Signal, qVersion
from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from repconsole import __version__
from repconsole.logfile import current_log_path, last_lines
from repconsole.ui.resources import app_pixmap

__all__ = ["AboutDialog", "diagnostics_text", "licence_text"]

APP_NAME = "repconsole"
DESCRIPTION = "A desktop representative console for live remote-support teams."
LICENCE_ID = "MIT"
COPYRIGHT = "Copyright © 2026 repconsole developers"

_ICON_SIZE = 96


def licence_text(distribution: str = APP_NAME) -> str:
    """Return the full licence text shipped with the installed distribution.

    The text comes from the distribution's metadata (``License-File``, stored
    under ``.dist-info/licenses/`` since core metadata 2.4) rather than from
    a second copy inside the package, so the repository's ``LICENSE`` is the
    only copy anyone edits.  The PyInstaller spec collects that metadata
    into the bundle.

    Every distribution of that name on ``sys.path`` is tried in order, as a
    checkout can hold a ``repconsole.egg-info`` (left by ``pip install -e``)
    that shadows the installed ``.dist-info`` but carries no licence file.
    Running from a checkout that was never installed has no metadata at all,
    and then the licence's name and copyright line stand in for the text.
    """
    from importlib import metadata  # when the dialog opens: it costs every start ~30 ms otherwise

    for dist in metadata.distributions(name=distribution):
        for name in dist.metadata.get_all("License-File") or ():
            # Core metadata 2.4 stores licence files under licenses/;
            # earlier setuptools put them beside METADATA.
            for candidate in (f"licenses/{name}", name):
                text = dist.read_text(candidate)
                if text:
                    return text
    return f"{LICENCE_ID} License\n\n{COPYRIGHT}\n"


def diagnostics_text(settings_path: Path | None, log_path: Path | None, *, lines: int = 40) -> str:
    """What support asks for first: versions, platform, where the files are, the last log lines."""
    app = QGuiApplication.instance()
    qt_platform = QGuiApplication.platformName() if app is not None else "none"
    out = [
        f"{APP_NAME} {__version__}",
        f"Python {platform.python_version()} ({sys.executable})",
        f"Qt {qVersion()}, PySide6 {PySide6.__version__}, Qt platform {qt_platform}",
        f"Platform {platform.platform()}",
        f"Settings {settings_path if settings_path is not None else '(none)'}",
        f"Log {log_path if log_path is not None else '(not logging to a file)'}",
    ]
    tail = last_lines(log_path, lines)
    out.append(f"Last {len(tail)} log lines:" if tail else "Log: (empty)")
    out.extend(f"  {line}" for line in tail)
    return "\n".join(out) + "\n"


class AboutDialog(QDialog):
    """The About box: icon, name, version, description, licence.

    A plain modal dialog rather than ``QMessageBox.about`` because the full
    licence text must be readable (the MIT licence requires the notice to
    travel with the program) and a message box cannot scroll.

    *Copy diagnostics* puts :func:`diagnostics_text` on the clipboard, for
    a support request.

    Signals:
        diagnosticsCopied(str): the diagnostics were put on the clipboard.
    """

    diagnosticsCopied = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, settings_path: Path | None = None, log_path: Path | None = None) -> None:
        """``log_path`` defaults to the file the console logs to (:func:`~repconsole.logfile.current_log_path`)."""
        super().__init__(parent)
        self._settings_path = settings_path
        self._log_path = log_path if log_path is not None else current_log_path()
        self.setWindowTitle(f"About {APP_NAME}")
        self.setObjectName("aboutDialog")

        icon = QLabel()
        icon.setObjectName("aboutIcon")
        icon.setPixmap(app_pixmap(_ICON_SIZE))
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)

        name = QLabel(APP_NAME)
        name.setObjectName("aboutName")
        title_font = QFont(name.font())
        title_font.setPointSizeF(title_font.pointSizeF() * 1.6)
        title_font.setBold(True)
        name.setFont(title_font)

        version = QLabel(f"Version {__version__}")
        version.setObjectName("aboutVersion")
        version.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        description = QLabel(DESCRIPTION)
        description.setObjectName("aboutDescription")
        description.setWordWrap(True)

        licence_label = QLabel(f"{COPYRIGHT}. Released under the {LICENCE_ID} licence:")
        licence_label.setObjectName("aboutLicence")
        licence_label.setWordWrap(True)

        self.licence = QPlainTextEdit(licence_text())
        self.licence.setObjectName("aboutLicenceText")
        self.licence.setReadOnly(True)
        self.licence.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        # Wide enough for the 80-column licence without horizontal scrolling.
        self.licence.setMinimumWidth(
            self.licence.fontMetrics().horizontalAdvance("M" * 80)
            + 2 * self.licence.frameWidth()
            + self.licence.verticalScrollBar().sizeHint().width()
        )
        self.licence.setMinimumHeight(self.licence.fontMetrics().lineSpacing() * 12)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        self.copy_button = QPushButton("&Copy diagnostics")
        self.copy_button.setToolTip("Copy the versions, the settings and log paths and the last log lines, for a support request")
        self.copy_button.setAutoDefault(False)
        buttons.addButton(self.copy_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.copy_button.clicked.connect(self._on_copy_button_clicked)
        self.copied_label = QLabel()
        self.copied_label.setObjectName("aboutCopied")
        # Its room is kept from the start: the confirmation must not resize the dialog.
        self.copied_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.copied_label.setFixedHeight(self.copied_label.fontMetrics().lineSpacing())

        facts = QVBoxLayout()
        facts.addWidget(name)
        facts.addWidget(version)
        facts.addWidget(description)
        facts.addStretch(1)

        header = QHBoxLayout()
        header.addWidget(icon)
        header.addSpacing(12)
        header.addLayout(facts, 1)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(licence_label)
        layout.addWidget(self.licence, 1)
        layout.addWidget(self.copied_label)
        layout.addWidget(buttons)

    def diagnostics(self) -> str:
        return diagnostics_text(self._settings_path, self._log_path)

    def _on_copy_button_clicked(self) -> None:
        text = self.diagnostics()
        QGuiApplication.clipboard().setText(text)
        self.copied_label.setText(f"Diagnostics copied ({len(text.splitlines())} lines): paste them into your support request.")
        self.diagnosticsCopied.emit(text)
