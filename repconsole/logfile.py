"""The console's log file: what a rep sends to support when something went wrong.

``console.log`` lives in the platform's per-user log directory
(``~/.local/state/repconsole/log`` on Linux) and is rotated by size, so a
console left running for months keeps a bounded amount of history
(:data:`MAX_BYTES` × (1 + :data:`BACKUPS`)).  Warnings also go to stderr, as
before.  Help ▸ About ▸ *Copy diagnostics* quotes the last lines
(:func:`last_lines`).

Qt-free: the command line may set logging up before any window exists.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from collections import deque
from pathlib import Path

__all__ = ["BACKUPS", "FILE_NAME", "MAX_BYTES", "current_log_path", "default_log_dir", "last_lines", "setup_logging"]

FILE_NAME = "console.log"
MAX_BYTES = 1_000_000
BACKUPS = 4
_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"

_current: Path | None = None


def default_log_dir() -> Path:
    """The platform's per-user log directory for repconsole."""
    import platformdirs

    return Path(platformdirs.user_log_dir("repconsole", appauthor=False))


def current_log_path() -> Path | None:
    """The file :func:`setup_logging` logs to, or None when it was not called (tests, embedders)."""
    return _current


def setup_logging(directory: str | os.PathLike[str] | None = None, *, level: int = logging.INFO) -> Path | None:
    """Log to ``console.log`` in ``directory`` (default: :func:`default_log_dir`), rotated; warnings to stderr.

    Returns the log file, or None when the directory cannot be written (the
    console still starts, logging to stderr only, and says why there).
    Calling it again replaces the handlers it added before.
    """
    global _current
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_repconsole", False):
            root.removeHandler(handler)
            handler.close()
    stderr = logging.StreamHandler()
    stderr.setLevel(logging.WARNING)
    stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    stderr._repconsole = True  # type: ignore[attr-defined]
    root.addHandler(stderr)
    root.setLevel(level)
    path = Path(directory) if directory is not None else default_log_dir()
    path = path / FILE_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # delay: the file opens at the first record, so a second launch that
        # only raises the first window never touches (or rotates) it.
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True)
    except OSError as exc:
        _current = None
        logging.getLogger(__name__).warning("no log file in %s: %s", path.parent, exc)
        return None
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler._repconsole = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    _current = path
    return path


def last_lines(path: Path | None, count: int = 40) -> list[str]:
    """The last ``count`` lines of the log file (none when it is missing or unreadable)."""
    if path is None:
        return []
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n") for line in deque(f, maxlen=count)]
    except OSError:
        return []
