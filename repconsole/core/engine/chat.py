"""The one check every chat line passes, session chat and team chat alike."""

from __future__ import annotations

from repconsole.core.errors import CommandError, Reason

__all__ = ["CHAT_LIMIT", "chat_text"]

CHAT_LIMIT = 4000


def chat_text(text: str, *, allow_empty: bool = False) -> str:
    """``text`` stripped; refused (INVALID) if not a string, empty, or longer than :data:`CHAT_LIMIT`."""
    if not isinstance(text, str):
        raise CommandError(Reason.INVALID, "text must be a string")
    text = text.strip()
    if not text and not allow_empty:
        raise CommandError(Reason.INVALID, "empty message")
    if len(text) > CHAT_LIMIT:
        raise CommandError(Reason.INVALID, f"message longer than {CHAT_LIMIT} characters")
    return text
