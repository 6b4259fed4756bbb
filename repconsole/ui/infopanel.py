"""A session tab's info panel: the customer's intake, the issue, the session's fields.

Every value is linked to its caption, both ways: the caption labels it
(AT-SPI's labelled-by, through ``setBuddy``), and the value's accessible
name reads "Name: Sam Lee" ("Company: none" for an empty one), so a screen
reader moving through the panel hears what each value is.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QFormLayout, QLabel, QLineEdit, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from repconsole.protocol import SessionView
from repconsole.ui.accessible import quiet_viewport
from repconsole.ui.widgets import clock_time

__all__ = ["InfoPanel"]

# The info panel's fixed labels; the longest sets the label column's width.
_INFO_LABELS = ("Name", "Company", "Company code", "Platform", "Locale", "Issue", "Category", "Priority", "Details",
                "External key", "Origin", "Source", "Portal", "Session key", "Started", "Session ID")


class InfoPanel(QScrollArea):
    """The scrolling customer and session details of a session tab.

    Attributes:
        external_key_edit: the editable external key (the tab sends what the rep types).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._values: dict[str, QLabel] = {}
        self._custom_shown: dict[str, str] | None = None
        self.setWidgetResizable(True)
        quiet_viewport(self)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(230)
        self.setAccessibleName("Customer and session details")
        body = QWidget()
        self._info_layout = QVBoxLayout(body)
        self._info_layout.setContentsMargins(12, 10, 12, 12)
        self._info_layout.setSpacing(4)

        self._section("Customer")
        form = self._form()
        self._info_row(form, "customer_name", "Name")
        self._info_row(form, "company", "Company")
        self._info_row(form, "company_code", "Company code")
        self._info_row(form, "platform", "Platform")
        self._info_row(form, "locale", "Locale")

        self._section("Issue")
        form = self._form()
        self._info_row(form, "issue", "Issue")
        self._info_row(form, "category", "Category")
        self._info_row(form, "priority", "Priority")
        self._info_row(form, "details", "Details")

        self._section("Session")
        form = self._form()
        self.external_key_edit = QLineEdit()
        self.external_key_edit.setMaxLength(100)
        self.external_key_edit.setPlaceholderText("Ticket ID")
        self.external_key_edit.setToolTip("A ticket or case ID; press Enter or leave the field to save it")
        key_label = self._form_label("E&xternal key")
        key_label.setBuddy(self.external_key_edit)
        self.external_key_edit.setAccessibleName("External key")
        key_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form.addRow(key_label, self.external_key_edit)
        self._info_row(form, "origin", "Origin")
        self._info_row(form, "source", "Source")
        self._info_row(form, "portal", "Portal")
        self._info_row(form, "session_key", "Session key")
        self._info_row(form, "created_at", "Started")
        self._info_row(form, "id", "Session ID")

        self._section("Custom fields")
        self._custom_form = self._form()
        self._info_layout.addStretch(1)
        self.setWidget(body)

    def _section(self, title: str) -> None:
        label = QLabel(title.upper())
        font = QFont(self.font())
        font.setBold(True)
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.82))
        font.setLetterSpacing(QFont.SpacingType.PercentageSpacing, 106)
        label.setFont(font)
        label.setStyleSheet("color: palette(placeholder-text);")
        if self._info_layout.count():
            self._info_layout.addSpacing(10)
        self._info_layout.addWidget(label)

    def _form(self) -> QFormLayout:
        form = QFormLayout()
        form.setContentsMargins(0, 2, 0, 0)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(5)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._info_layout.addLayout(form)
        return form

    def _form_label(self, text: str) -> QLabel:
        label = QLabel(text)
        label.setStyleSheet("color: palette(placeholder-text);")
        # One label column width for every section, so the values line up down the panel.
        label.setMinimumWidth(max(label.fontMetrics().horizontalAdvance(t) for t in _INFO_LABELS) + 2)
        label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        return label

    def _value_label(self) -> QLabel:
        value = QLabel()
        value.setWordWrap(True)
        value.setTextFormat(Qt.TextFormat.PlainText)
        value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        value.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        value.setMinimumWidth(60)
        return value

    def _info_row(self, form: QFormLayout, key: str, text: str) -> None:
        value = self._value_label()
        self._values[key] = value
        form.addRow(self._caption(text, value), value)

    def _caption(self, text: str, value: QLabel) -> QLabel:
        # Linked both ways: the caption labels the value (AT-SPI's labelled-by), and the value reads "Name: Sam Lee".
        label = self._form_label(text)
        label.setBuddy(value)
        value.setProperty("caption", text)
        return label


    def show_session(self, s: SessionView) -> None:
        """Show ``s``'s intake and session fields (the external key unless the rep is editing it)."""
        values: dict[str, str] = {key: str(getattr(s, key, "") or "") for key in self._values}
        values["priority"] = s.priority.label
        values["origin"] = s.origin.label
        values["created_at"] = clock_time(s.created_at) if s.created_at else ""
        for key, label in self._values.items():
            self._set_value(label, values[key])
        if not self.external_key_edit.hasFocus():
            self.external_key_edit.setText(s.external_key)

        fields: dict[str, str] = dict(s.custom_fields)
        if fields == self._custom_shown:
            return
        self._custom_shown = fields
        while self._custom_form.rowCount():
            self._custom_form.removeRow(0)
        if not fields:
            none = self._value_label()
            self._set_value(none, "")
            none.setText("None")
            self._custom_form.addRow(none)
        for key in sorted(fields, key=str.casefold):
            value = self._value_label()
            value.setProperty("caption", key[:1].upper() + key[1:])
            self._set_value(value, str(fields[key]))
            self._custom_form.addRow(self._caption(key[:1].upper() + key[1:], value), value)

    @staticmethod
    def _set_value(label: QLabel, text: str) -> None:
        caption = label.property("caption")
        if caption:
            label.setAccessibleName(f"{caption}: {text or 'none'}")
        if text:
            label.setText(text)
            label.setStyleSheet("")
        else:
            label.setText("—")
            label.setStyleSheet("color: palette(placeholder-text);")
