"""The rep's saved arrangement: table layout, favourites, window, last queue, personal snippets.

Stored as ``settings.json`` in a directory the caller chooses (the
platform's config directory by default; tests pass a temporary one).  The
file is written atomically: a crash mid-save leaves the previous file, never
half of a new one.

A settings file that cannot be used never stops the console and never
loses what was in it:

* a missing file gives the defaults, silently;
* a file that cannot be parsed, is not a JSON object, or has a version
  this program does not know is moved aside as
  ``settings.json.corrupt-<timestamp>`` and the defaults are used;
* a file whose parts are partly wrong keeps the good parts; each bad part
  is reset to its default, and a copy of the file is kept aside the same
  way.

Either way :meth:`Settings.load` returns a warning that names the file and
the problem, for the window to show.

Qt-free: the window owns what goes into ``window`` (geometry, splitter
sizes) and the table view owns the shape of ``table``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from repconsole.core.model import QueueRef
from repconsole.preferences import Preferences, load_preferences
from repconsole.snippets import check_personal, default_personal

__all__ = ["FILE_NAME", "SETTINGS_VERSION", "Settings", "default_directory"]

FILE_NAME = "settings.json"
# 2: "preferences" (alerts, appearance, startup, chat, confirmations).  A
# version-1 file is read as it was, with the default preferences.
SETTINGS_VERSION = 2
_READABLE_VERSIONS = frozenset({1, 2})
APP_NAME = "repconsole"

_MAX_FAVOURITES = 1000


def default_directory() -> Path:
    """The platform's per-user config directory for repconsole."""
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME))


class _Invalid(ValueError):
    """One part of the file has the wrong shape."""


def _check_table(value: Any) -> dict[str, Any]:
    """The table layout, as :meth:`QueueTableView.save_layout` writes it.

    ``{"columns": [{"key": str, "visible": bool, "width": int}, ...],
    "sort": {"key": str, "order": "asc" | "desc"} | None}``.  Only the
    shape is checked here; the view ignores column keys it does not know.
    """
    if not isinstance(value, dict):
        raise _Invalid("the table layout is not an object")
    columns = value.get("columns", [])
    if not isinstance(columns, list):
        raise _Invalid("the table columns are not a list")
    for entry in columns:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise _Invalid("a table column has no key")
        if "visible" in entry and not isinstance(entry["visible"], bool):
            raise _Invalid(f"column {entry['key']!r}: visible is not true/false")
        width = entry.get("width")
        if width is not None and (isinstance(width, bool) or not isinstance(width, int) or width < 0):
            raise _Invalid(f"column {entry['key']!r}: width is not a positive whole number")
    sort = value.get("sort")
    if sort is not None and (not isinstance(sort, dict) or not isinstance(sort.get("key"), str) or sort.get("order") not in ("asc", "desc")):
        raise _Invalid("the table sort is not {key, order}")
    return copy.deepcopy(value)


def _check_favourites(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
        raise _Invalid("favourites is not a list of team ids")
    if len(value) > _MAX_FAVOURITES:
        raise _Invalid(f"more than {_MAX_FAVOURITES} favourites")
    return list(dict.fromkeys(value))


def _check_window(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid("the window part is not an object")
    return copy.deepcopy(value)


def _check_last_queue(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid("last_queue is not text")
    try:
        QueueRef.parse(value)
    except ValueError as exc:
        raise _Invalid(f"last_queue: {exc}") from None
    return value


def _check_preferences(value: Any) -> Preferences:
    try:
        return load_preferences(value)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _check_snippets(value: Any) -> list[dict[str, str]]:
    try:
        return check_personal(value)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


# Each part of the file is checked on its own: a bad part resets only itself.
_PARTS = {
    "table": _check_table,
    "favourites": _check_favourites,
    "window": _check_window,
    "last_queue": _check_last_queue,
    "preferences": _check_preferences,
    "snippets": _check_snippets,
}


class Settings:
    """The rep's settings, as kept in ``<directory>/settings.json``.

    Every accessor validates what it is given and raises ``TypeError`` or
    ``ValueError`` for a wrong value: a programming error, unlike a bad
    file, which :meth:`load` survives.

    Attributes:
        directory: where the file lives.
        path: the settings file.
    """

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_directory()
        self.path = self.directory / FILE_NAME
        self._table: dict[str, Any] = {}
        self._favourites: list[str] = []
        self._window: dict[str, Any] = {}
        self._last_queue: str | None = None
        self._preferences = Preferences()
        self._snippets = default_personal()

    # ------------------------------------------------------------ loading

    @classmethod
    def load(cls, directory: str | os.PathLike[str] | None = None) -> tuple[Settings, str | None]:
        """Read the settings in ``directory``; never raises for bad content.

        Returns the settings and ``None``, or the settings (defaults where
        the file was unusable) and a warning for the rep.
        """
        settings = cls(directory)
        path = settings.path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return settings, None
        except OSError as exc:
            return settings, f"Could not read the settings file {path} ({exc.strerror or exc}); default settings are used."
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return settings, settings._set_aside("it is not UTF-8 text", move=True)
        except ValueError as exc:
            return settings, settings._set_aside(f"it is not valid JSON: {exc}", move=True)
        if not isinstance(data, dict):
            return settings, settings._set_aside(f"it holds a JSON {type(data).__name__}, not an object", move=True)
        version = data.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            return settings, settings._set_aside("it has no version number", move=True)
        if version not in _READABLE_VERSIONS:
            newer = " (written by a newer repconsole?)" if version > SETTINGS_VERSION else ""
            return settings, settings._set_aside(f"it has version {version}, this program reads version {SETTINGS_VERSION}{newer}", move=True)
        problems: list[str] = []
        for name, check in _PARTS.items():
            if name not in data:
                continue
            try:
                value = check(data[name])
            except _Invalid as exc:
                problems.append(str(exc))
            else:
                setattr(settings, f"_{name}", value)
        if problems:
            return settings, settings._set_aside("; ".join(problems), move=False, partial=True)
        return settings, None

    def _set_aside(self, problem: str, *, move: bool, partial: bool = False) -> str:
        """Keep the unusable file as ``settings.json.corrupt-<timestamp>`` and describe what happened."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{FILE_NAME}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside = self.path.with_name(f"{FILE_NAME}.corrupt-{stamp}-{n}")
            n += 1
        try:
            if move:
                os.replace(self.path, aside)
            else:
                shutil.copy2(self.path, aside)
            kept = f" The file was kept as {aside}."
        except OSError as exc:
            kept = f" It could not be kept aside ({exc.strerror or exc}) and will be overwritten on the next save."
        if partial:
            return f"Some settings in {self.path} were reset to their defaults: {problem}.{kept}"
        return f"The settings file {self.path} could not be used: {problem}. Default settings are used.{kept}"

    # ------------------------------------------------------------- saving

    def to_dict(self) -> dict[str, Any]:
        """The file's contents."""
        return {
            "version": SETTINGS_VERSION,
            "table": copy.deepcopy(self._table),
            "favourites": list(self._favourites),
            "window": copy.deepcopy(self._window),
            "last_queue": self._last_queue,
            "preferences": msgspec.to_builtins(self._preferences),
            "snippets": copy.deepcopy(self._snippets),
        }

    def save(self) -> None:
        """Write the file atomically (temporary file, then ``os.replace``).

        Raises OSError when the directory cannot be written; the previous
        file is then left as it was.
        """
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{FILE_NAME}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # ---------------------------------------------------------- accessors

    @property
    def table(self) -> dict[str, Any]:
        """The queue table's layout per column key (a copy; assign to change it)."""
        return copy.deepcopy(self._table)

    @table.setter
    def table(self, value: Mapping[str, Any]) -> None:
        if not isinstance(value, Mapping):
            raise TypeError("the table layout must be a mapping")
        try:
            table = _check_table(dict(value))
            json.dumps(table)
        except _Invalid as exc:
            raise ValueError(str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the table layout must be JSON data: {exc}") from None
        self._table = table

    @property
    def favourites(self) -> list[str]:
        """Favourite team ids, in the order they were added."""
        return list(self._favourites)

    @favourites.setter
    def favourites(self, value: list[str] | tuple[str, ...]) -> None:
        if not isinstance(value, (list, tuple)):
            raise TypeError("favourites must be a list of team ids")
        try:
            self._favourites = _check_favourites(list(value))
        except _Invalid as exc:
            raise ValueError(str(exc)) from None

    @property
    def window(self) -> dict[str, Any]:
        """Free-form window state (geometry, splitter sizes...), owned by the window."""
        return copy.deepcopy(self._window)

    @window.setter
    def window(self, value: Mapping[str, Any]) -> None:
        if not isinstance(value, Mapping):
            raise TypeError("window settings must be a mapping")
        data = dict(value)
        try:
            json.dumps(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"window settings must be JSON data: {exc}") from None
        self._window = copy.deepcopy(data)

    @property
    def preferences(self) -> Preferences:
        """What the Preferences dialog edits.  The object itself: change its fields, then :meth:`save`."""
        return self._preferences

    @preferences.setter
    def preferences(self, value: Preferences) -> None:
        if not isinstance(value, Preferences):
            raise TypeError("preferences must be a Preferences")
        self._preferences = value

    @property
    def snippets(self) -> list[dict[str, str]]:
        """The rep's personal canned messages (issue 14), ``{"name", "text"}`` each, in the rep's order."""
        return copy.deepcopy(self._snippets)

    @snippets.setter
    def snippets(self, value: list[dict[str, str]]) -> None:
        self._snippets = check_personal(value)

    @property
    def last_queue(self) -> str | None:
        """The queue key (``rep:x`` / ``team:x``) shown when the console last closed."""
        return self._last_queue

    @last_queue.setter
    def last_queue(self, value: str | None) -> None:
        try:
            self._last_queue = _check_last_queue(value)
        except _Invalid as exc:
            raise ValueError(str(exc)) from None

    def __repr__(self) -> str:
        return f"<Settings {self.path}>"
