"""Where a TOML document sets each key: the line numbers behind config errors.

``tomllib`` gives values but not positions, and a config error is only
useful when it names the line ("site.toml:12: teams.net.name: expected a
string").  :class:`TomlLines` reads the text once more, lightly, to map each
key path to the line that sets it.  It does not validate: a document it
reads is one ``tomllib`` already accepted.
"""

from __future__ import annotations

__all__ = ["KeyPath", "TomlLines"]

KeyPath = tuple[str | int, ...]


class TomlLines:
    """Maps key paths of a TOML document to the line that sets them.

    A path is a tuple of keys and array-of-tables indices, e.g.
    ``("reps", 2, "teams")`` for ``teams = [...]`` in the third ``[[reps]]``.
    :meth:`line_of` answers for the longest known prefix, so a key inside an
    inline table or an array element is reported at the line of its
    enclosing key.  The scanner understands what a configuration needs:
    comments, basic and literal strings (multi-line too), dotted and quoted
    keys, ``[table]``, ``[[array]]`` and multi-line values.
    """

    def __init__(self, text: str) -> None:
        self._lines: dict[KeyPath, int] = {}
        self._arrays: dict[tuple[str, ...], int] = {}
        self._scan(text)

    def line_of(self, path: KeyPath) -> int | None:
        for k in range(len(path), 0, -1):
            line = self._lines.get(path[:k])
            if line is not None:
                return line
        return None

    def _record(self, path: KeyPath, line: int) -> None:
        self._lines.setdefault(path, line)

    def _resolve(self, keys: tuple[str, ...]) -> KeyPath:
        """A table header's path, with the current index of each enclosing array of tables."""
        out: list[str | int] = []
        for i, key in enumerate(keys):
            out.append(key)
            index = self._arrays.get(keys[: i + 1])
            if index is not None and i + 1 < len(keys):
                out.append(index)
        return tuple(out)

    def _scan(self, text: str) -> None:
        prefix: KeyPath = ()
        pending_close: str | None = None  # the delimiter of an open multi-line string
        depth = 0  # brackets still open in a multi-line value
        for number, raw in enumerate(text.splitlines(), 1):
            if pending_close is not None or depth > 0:  # inside a multi-line value
                pending_close, depth = _continue_value(raw, pending_close, depth)
                continue
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[["):
                keys = tuple(_split_key(line[2 : line.find("]]")]))
                index = self._arrays.get(keys, -1) + 1
                self._arrays[keys] = index
                parent = self._resolve(keys[:-1]) if len(keys) > 1 else ()
                prefix = (*parent, keys[-1], index)
                self._record((*parent, keys[-1]), number)
                self._record(prefix, number)
                continue
            if line.startswith("["):
                prefix = self._resolve(tuple(_split_key(line[1 : line.find("]")])))
                self._record(prefix, number)
                continue
            key_text, value = _split_assignment(line)
            if key_text is None:
                continue
            self._record((*prefix, *_split_key(key_text)), number)
            pending_close, depth = _continue_value(value, None, 0)


def _split_key(text: str) -> list[str]:
    """``a."b.c".d`` -> ["a", "b.c", "d"]."""
    keys, current, quote, i = [], "", None, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"' and i + 1 < len(text):
                current += text[i + 1]
                i += 2
                continue
            if ch == quote:
                quote = None
            else:
                current += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            keys.append(current.strip())
            current = ""
        else:
            current += ch
        i += 1
    keys.append(current.strip())
    return keys


def _split_assignment(line: str) -> tuple[str | None, str]:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "=":
            return line[:i].strip(), line[i + 1 :]
    return None, ""


def _continue_value(text: str, open_string: str | None, depth: int) -> tuple[str | None, int]:
    """Scan part of a value: returns (still-open multi-line string delimiter, open bracket depth)."""
    i = 0
    while i < len(text):
        if open_string is not None:
            end = text.find(open_string, i)
            if end < 0:
                return open_string, depth
            i = end + 3
            open_string = None
            continue
        ch = text[i]
        if text.startswith('"""', i) or text.startswith("'''", i):
            open_string = text[i : i + 3]
            i += 3
            continue
        if ch in "\"'":
            end = i + 1
            while end < len(text) and text[end] != ch:
                end += 2 if ch == '"' and text[end] == "\\" else 1
            i = end + 1
            continue
        if ch == "#":
            break
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        i += 1
    return open_string, max(depth, 0)
