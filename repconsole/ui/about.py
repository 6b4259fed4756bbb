"""Help ▸ About: what this program is, which version, and under what licence."""

from __future__ import annotations

from importlib import metadata

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from repconsole import __version__
from repconsole.ui.resources import app_pixmap

__all__ = ["AboutDialog", "licence_text"]

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
    for dist in metadata.distributions(name=distribution):
        for name in dist.metadata.get_all("License-File") or ():
            # Core metadata 2.4 stores licence files under licenses/;
            # earlier setuptools put them beside METADATA.
            for candidate in (f"licenses/{name}", name):
                text = dist.read_text(candidate)
                if text:
                    return text
    return f"{LICENCE_ID} License\n\n{COPYRIGHT}\n"


class AboutDialog(QDialog):
    """The About box: icon, name, version, description, licence.

    A plain modal dialog rather than ``QMessageBox.about`` because the full
    licence text must be readable (the MIT licence requires the notice to
    travel with the program) and a message box cannot scroll.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
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
        layout.addWidget(buttons)
