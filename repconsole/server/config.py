"""The server's site: the built-in demo, or a TOML file.

:func:`load_config` reads a TOML file (see docs/site.example.toml) into a
:class:`SiteSpec` and checks everything an engine would refuse later, so a
mistake stops the server before it listens, with a message that names the
file, the line and the key::

    site.toml:14: teams.network.rule.overflow_team: unknown team 'netwrk'

tomllib reports the line of a syntax error; for a value that is valid TOML
but wrong, :class:`TomlLines` finds the line of the key by scanning the
source (tables, arrays of tables, dotted and quoted keys, inline tables).
Every problem in the file is reported at once, not just the first.

:func:`demo_site` is the simulator's site (repconsole.backend.world), with
the simulator's rep "me" called ``alex``: with no configuration the server
has something to log in to.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import random
import re
import tomllib
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repconsole.core.clock import Clock, ManualClock
from repconsole.core.engine import QueueEngine
from repconsole.core.model import CUSTOMER, QueueRef, RuleAction, SiteConfig, WaitingRule
from repconsole.server.auth import parse_hash

__all__ = [
    "ButtonSpec",
    "ConfigError",
    "ConfigProblem",
    "IssueSpec",
    "LinkSpec",
    "RepSpec",
    "RuleSpec",
    "ServerSettings",
    "SiteSpec",
    "TeamSpec",
    "TomlLines",
    "build_engine",
    "demo_site",
    "load_config",
    "parse_origin",
]

DEMO_ME = "alex"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_ID_RULE = "1 to 64 letters, digits or _ . @ -, starting with a letter or digit"


# ------------------------------------------------------------------ specs


@dataclass(frozen=True, slots=True)
class RuleSpec:
    after: float
    action: RuleAction
    overflow_team: str | None = None


@dataclass(frozen=True, slots=True)
class TeamSpec:
    id: str
    name: str
    persistent: bool = False
    rule: RuleSpec | None = None


@dataclass(frozen=True, slots=True)
class RepSpec:
    id: str
    name: str
    teams: tuple[str, ...] = ()
    max_sessions: int | None = None  # None: the site's default
    password_hash: str | None = None


@dataclass(frozen=True, slots=True)
class IssueSpec:
    code: str
    name: str
    category: str
    team: str


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    id: str
    description: str
    target: QueueRef
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class LinkSpec:
    id: str
    name: str
    target: QueueRef


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """How the server treats connections (the site itself is in :class:`SiteSpec`).

    Attributes:
        allowed_origins: origins (``https://host[:port]``) whose pages may use
            the customer endpoint, besides the server's own.
        resume_window: seconds of events kept for a console to resume
            without a new snapshot; also how long command answers are kept.
        token_lifetime: seconds a login's token can resume.
        customer_grace: seconds a customer may be away (reloading the page,
            a network switch) before their session ends; 0: never.
        customer_starts_per_minute: sessions one client address may start
            per minute (anyone can start one: this bounds spam); 0: no limit.
    """

    allowed_origins: tuple[str, ...] = ()
    resume_window: float = 300.0
    token_lifetime: float = 12 * 3600.0
    customer_grace: float = 120.0
    customer_starts_per_minute: int = 30


@dataclass(frozen=True, slots=True)
class SiteSpec:
    site: SiteConfig
    teams: tuple[TeamSpec, ...]
    reps: tuple[RepSpec, ...]
    issues: tuple[IssueSpec, ...] = ()
    buttons: tuple[ButtonSpec, ...] = ()
    links: tuple[LinkSpec, ...] = ()
    server: ServerSettings = field(default_factory=ServerSettings)
    source: Path | None = None  # None: the demo site

    @property
    def demo(self) -> bool:
        return self.source is None

    def rep(self, rep_id: str) -> RepSpec | None:
        return next((r for r in self.reps if r.id == rep_id), None)


def build_engine(spec: SiteSpec, clock: Clock, *, rng: random.Random | None = None) -> QueueEngine:
    """A fresh engine with the spec's directory.  Every rep starts disconnected."""
    engine = QueueEngine(clock, rng=rng, site=dataclasses.replace(spec.site))
    for t in spec.teams:
        engine.add_team(t.id, t.name, persistent=t.persistent)
    for t in spec.teams:  # rules name other teams: all of them exist by now
        if t.rule is not None:
            engine.set_rule(t.id, WaitingRule(t.rule.after, t.rule.action, t.rule.overflow_team))
    for r in spec.reps:
        # A rep is connected only while a console of theirs is: a rep who
        # never logged in cannot be picked on the support site, nor inherit.
        engine.add_rep(r.id, r.name, r.teams, max_sessions=r.max_sessions, connected=False)
    for i in spec.issues:
        engine.add_issue(i.code, i.name, i.category, i.team)
    for b in spec.buttons:
        engine.add_button(b.id, b.description, b.target, expires_at=b.expires_at)
    for link in spec.links:
        engine.add_link(link.id, link.name, link.target)
    return engine


# ------------------------------------------------------------------- demo


def demo_site() -> SiteSpec:
    """The simulator's site, read back from an engine it built: the two cannot drift apart."""
    from repconsole.backend import world

    scratch = QueueEngine(ManualClock(), rng=random.Random(0))
    world.build_site(scratch)

    def rename(ident: str) -> str:
        if ident == world.ME:
            return DEMO_ME
        return ident[: -len(world.ME)] + DEMO_ME if ident.endswith("-" + world.ME) else ident

    def target(q: QueueRef) -> QueueRef:
        return QueueRef(q.kind, rename(q.id)) if q.is_personal else q

    teams = tuple(
        TeamSpec(t.id, t.name, t.persistent, RuleSpec(t.rule.after, t.rule.action, t.rule.overflow_team) if t.rule else None)
        for t in scratch.teams.values()
    )
    reps = tuple(RepSpec(rename(r.id), r.name, tuple(sorted(r.teams)), r.max_sessions) for r in scratch.reps.values())
    site = dataclasses.replace(scratch.site)
    if site.fallback_queue is not None:
        site.fallback_queue = target(site.fallback_queue)
    return SiteSpec(
        site=site,
        teams=teams,
        reps=reps,
        issues=tuple(IssueSpec(i.code, i.name, i.category, i.team) for i in scratch.issues.values()),
        buttons=tuple(ButtonSpec(rename(b.id), b.description, target(b.target), b.expires_at) for b in scratch.buttons.values()),
        links=tuple(LinkSpec(rename(k.id), k.name, target(k.target)) for k in scratch.links.values()),
    )


# ----------------------------------------------------------------- errors

Path_ = tuple[str | int, ...]


def format_key(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            out += ("." if out else "") + text
    return out


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """Everything wrong with a configuration file, one problem per line."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# ---------------------------------------------------------- line finding


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
        self._lines: dict[Path_, int] = {}
        self._arrays: dict[tuple[str, ...], int] = {}
        self._scan(text)

    def line_of(self, path: Path_) -> int | None:
        for k in range(len(path), 0, -1):
            line = self._lines.get(path[:k])
            if line is not None:
                return line
        return None

    def _record(self, path: Path_, line: int) -> None:
        self._lines.setdefault(path, line)

    def _resolve(self, keys: tuple[str, ...]) -> Path_:
        """A table header's path, with the current index of each enclosing array of tables."""
        out: list[str | int] = []
        for i, key in enumerate(keys):
            out.append(key)
            index = self._arrays.get(keys[: i + 1])
            if index is not None and i + 1 < len(keys):
                out.append(index)
        return tuple(out)

    def _scan(self, text: str) -> None:
        prefix: Path_ = ()
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


# -------------------------------------------------------------- checking


class _Checker:
    """Reads typed values out of the parsed document and collects problems."""

    def __init__(self, file: str, lines: TomlLines) -> None:
        self.file = file
        self.lines = lines
        self.problems: list[ConfigProblem] = []

    def problem(self, path: Path_, message: str) -> None:
        self.problems.append(ConfigProblem(self.file, self.lines.line_of(path), format_key(path), message))

    def table(self, doc: dict[str, Any], path: Path_, allowed: Sequence[str]) -> dict[str, Any]:
        if not isinstance(doc, dict):
            self.problem(path, "must be a table")
            return {}
        for key in doc:
            if key not in allowed:
                self.problem((*path, key), f"unknown key (expected one of: {', '.join(allowed)})")
        return doc

    def value(self, doc: dict[str, Any], path: Path_, kind: str, *, required: bool = False, default: Any = None) -> Any:
        key = path[-1]
        if key not in doc:
            if required:
                self.problem(path, "is required")
            return default
        v = doc[key]
        ok = {
            "str": isinstance(v, str) and v.strip() != "",
            "bool": isinstance(v, bool),
            "int": isinstance(v, int) and not isinstance(v, bool),
            "seconds": isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0,
            "list": isinstance(v, list),
        }[kind]
        if not ok:
            self.problem(path, {
                "str": "must be a non-empty string",
                "bool": "must be true or false",
                "int": "must be a whole number",
                "seconds": "must be a number of seconds, 0 or more",
                "list": "must be an array",
            }[kind])  # fmt: skip
            return default
        return float(v) if kind == "seconds" else v

    def ident(self, doc: dict[str, Any], path: Path_, seen: set[str], what: str) -> str | None:
        value = self.value(doc, path, "str", required=True)
        if value is None:
            return None
        if not _ID.match(value):
            self.problem(path, f"{value!r} is not a valid {what} id ({_ID_RULE})")
            return None
        if value in seen:
            self.problem(path, f"duplicate {what} id {value!r}")
            return None
        seen.add(value)
        return value

    def target(self, doc: dict[str, Any], path: Path_, teams: set[str], reps: set[str]) -> QueueRef | None:
        text = self.value(doc, path, "str", required=True)
        if text is None:
            return None
        try:
            q = QueueRef.parse(text)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        known = reps if q.is_personal else teams
        if q.id not in known:
            self.problem(path, f"unknown {'rep' if q.is_personal else 'team'} {q.id!r}")
            return None
        return q


def parse_origin(text: str) -> str:
    """``scheme://host[:port]``, normalised, or ValueError saying why not."""
    if text.strip().lower() == "null":
        raise ValueError("'null' is never allowed: it is the origin of sandboxed frames and local files")
    u = urllib.parse.urlsplit(text.strip())
    if u.scheme not in ("http", "https") or not u.hostname or u.path not in ("", "/") or u.query or u.fragment:
        raise ValueError(f"{text!r} is not an origin such as https://support.example.com[:port]")
    port = f":{u.port}" if u.port is not None else ""
    return f"{u.scheme}://{u.hostname}{port}"


def _timestamp(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date and time") from None
    if not isinstance(value, dt.datetime):
        raise ValueError("must be a date and time, e.g. 2026-12-31T18:00:00Z")  # noqa: TRY004 - a config problem, not a bug
    if value.tzinfo is None:
        raise ValueError("needs a time zone (Z or +hh:mm): the server's clock is UTC")
    return value.timestamp()


_TOP = ("site", "server", "teams", "reps", "issues", "buttons", "links")
_SITE = ("grace_period", "fallback_queue", "max_sessions_default", "key_length", "key_failures_per_minute")
_SERVER = ("allowed_origins", "resume_window", "token_lifetime", "customer_grace", "customer_starts_per_minute")
_TEAM = ("name", "persistent", "rule")
_RULE = ("after", "action", "overflow_team")
_REP = ("id", "name", "teams", "max_sessions", "password_hash")
_ISSUE = ("code", "name", "category", "team")
_BUTTON = ("id", "description", "target", "expires_at")
_LINK = ("id", "name", "target")


def load_config(path: str | Path) -> SiteSpec:
    """Read and check a site file.  Raises ConfigError naming file, line and key of every problem."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(name, None, "", f"cannot read: {exc}")]) from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", str(exc))
        raise ConfigError([ConfigProblem(name, int(m.group(1)) if m else None, "", f"TOML syntax error: {message}")]) from None
    ch = _Checker(name, TomlLines(text))
    spec = _check(ch, doc, path)
    if ch.problems:
        raise ConfigError(ch.problems)
    assert spec is not None
    return spec


def _check(ch: _Checker, doc: dict[str, Any], source: Path) -> SiteSpec | None:
    ch.table(doc, (), _TOP)
    # Directory first: every reference below is checked against it.
    teams_doc = doc.get("teams", {})
    if not isinstance(teams_doc, dict):
        ch.problem(("teams",), "must be a table of teams, e.g. [teams.network]")
        teams_doc = {}
    team_ids: set[str] = set()
    for team_id in teams_doc:
        if not _ID.match(team_id):
            ch.problem(("teams", team_id), f"{team_id!r} is not a valid team id ({_ID_RULE})")
        team_ids.add(team_id)
    reps_doc = ch.value(doc, ("reps",), "list", required=True, default=[])
    rep_ids: set[str] = {r["id"] for r in reps_doc if isinstance(r, dict) and isinstance(r.get("id"), str)}
    if not reps_doc and "reps" in doc:
        ch.problem(("reps",), "a site needs at least one rep")

    site_doc = ch.table(doc.get("site", {}), ("site",), _SITE)
    site = SiteConfig()
    site.grace_period = ch.value(site_doc, ("site", "grace_period"), "seconds", default=site.grace_period)
    if "fallback_queue" in site_doc:
        site.fallback_queue = ch.target(site_doc, ("site", "fallback_queue"), team_ids, rep_ids)
    for key, low, high in (("max_sessions_default", 1, 1000), ("key_length", 5, 32), ("key_failures_per_minute", 1, 1000)):
        value = ch.value(site_doc, ("site", key), "int", default=getattr(site, key))
        if not low <= value <= high:
            ch.problem(("site", key), f"must be between {low} and {high}")
        else:
            setattr(site, key, value)

    server_doc = ch.table(doc.get("server", {}), ("server",), _SERVER)
    defaults = ServerSettings()
    origins: list[str] = []
    for i, text in enumerate(ch.value(server_doc, ("server", "allowed_origins"), "list", default=[])):
        try:
            origins.append(parse_origin(text if isinstance(text, str) else ""))
        except ValueError as exc:
            ch.problem(("server", "allowed_origins", i), str(exc))
    settings = ServerSettings(
        allowed_origins=tuple(origins),
        resume_window=ch.value(server_doc, ("server", "resume_window"), "seconds", default=defaults.resume_window),
        token_lifetime=ch.value(server_doc, ("server", "token_lifetime"), "seconds", default=defaults.token_lifetime),
        customer_grace=ch.value(server_doc, ("server", "customer_grace"), "seconds", default=defaults.customer_grace),
        customer_starts_per_minute=ch.value(
            server_doc, ("server", "customer_starts_per_minute"), "int", default=defaults.customer_starts_per_minute
        ),
    )
    if settings.customer_starts_per_minute < 0:
        ch.problem(("server", "customer_starts_per_minute"), "must be 0 (no limit) or more")
    if settings.token_lifetime < 60:
        ch.problem(("server", "token_lifetime"), "must be at least 60 seconds")

    teams = []
    for team_id, t in teams_doc.items():
        p: Path_ = ("teams", team_id)
        t = ch.table(t, p, _TEAM)
        rule = None
        if "rule" in t:
            r = ch.table(t["rule"], (*p, "rule"), _RULE)
            after = ch.value(r, (*p, "rule", "after"), "seconds", required=True, default=0.0)
            if "after" in r and after <= 0:
                ch.problem((*p, "rule", "after"), "must be more than 0 seconds")
            action_text = ch.value(r, (*p, "rule", "action"), "str", required=True)
            action = None
            if action_text is not None:
                try:
                    action = RuleAction(action_text)
                except ValueError:
                    ch.problem((*p, "rule", "action"), f"unknown action {action_text!r} (expected mark_overdue or transfer)")
            overflow = ch.value(r, (*p, "rule", "overflow_team"), "str")
            if action is RuleAction.TRANSFER and overflow is None and "overflow_team" not in r:
                ch.problem((*p, "rule", "overflow_team"), "is required when action is 'transfer'")
            elif overflow is not None and action is RuleAction.MARK_OVERDUE:
                ch.problem((*p, "rule", "overflow_team"), "only a 'transfer' rule has an overflow team")
            elif overflow is not None and overflow not in team_ids:
                ch.problem((*p, "rule", "overflow_team"), f"unknown team {overflow!r}")
            elif overflow == team_id:
                ch.problem((*p, "rule", "overflow_team"), "a team cannot overflow into itself")
            if action is not None:
                rule = RuleSpec(after, action, overflow)
        teams.append(TeamSpec(
            team_id,
            ch.value(t, (*p, "name"), "str", required=True, default=team_id),
            ch.value(t, (*p, "persistent"), "bool", default=False),
            rule,
        ))  # fmt: skip

    reps: list[RepSpec] = []
    seen: set[str] = set()
    for i, r in enumerate(reps_doc):
        p = ("reps", i)
        r = ch.table(r, p, _REP)
        rep_id = ch.ident(r, (*p, "id"), seen, "rep")
        if rep_id == CUSTOMER:
            ch.problem((*p, "id"), f"{CUSTOMER!r} is reserved for the customer's chat lines")
        member_of = []
        for j, team in enumerate(ch.value(r, (*p, "teams"), "list", default=[])):
            if not isinstance(team, str) or team not in team_ids:
                ch.problem((*p, "teams", j), f"unknown team {team!r}")
            else:
                member_of.append(team)
        max_sessions = ch.value(r, (*p, "max_sessions"), "int")
        if max_sessions is not None and not 1 <= max_sessions <= 1000:
            ch.problem((*p, "max_sessions"), "must be between 1 and 1000")
        password_hash = ch.value(r, (*p, "password_hash"), "str")
        if password_hash is not None:
            try:
                parse_hash(password_hash)
            except ValueError as exc:
                ch.problem((*p, "password_hash"), f"{exc} (make one with: repconsole-server passwd USERNAME)")
        if rep_id is not None:
            name = ch.value(r, (*p, "name"), "str", required=True, default=rep_id)
            reps.append(RepSpec(rep_id, name, tuple(member_of), max_sessions, password_hash))

    issues: list[IssueSpec] = []
    seen = set()
    for i, d in enumerate(ch.value(doc, ("issues",), "list", default=[])):
        p = ("issues", i)
        d = ch.table(d, p, _ISSUE)
        code = ch.ident(d, (*p, "code"), seen, "issue")
        team = ch.value(d, (*p, "team"), "str", required=True)
        if team is not None and team not in team_ids:
            ch.problem((*p, "team"), f"unknown team {team!r}")
        name = ch.value(d, (*p, "name"), "str", required=True)
        category = ch.value(d, (*p, "category"), "str", default="")
        if code and team in team_ids and name:
            issues.append(IssueSpec(code, name, category, team))

    buttons: list[ButtonSpec] = []
    seen = set()
    for i, d in enumerate(ch.value(doc, ("buttons",), "list", default=[])):
        p = ("buttons", i)
        d = ch.table(d, p, _BUTTON)
        button_id = ch.ident(d, (*p, "id"), seen, "button")
        description = ch.value(d, (*p, "description"), "str", required=True)
        target = ch.target(d, (*p, "target"), team_ids, rep_ids)
        expires_at = None
        if "expires_at" in d:
            try:
                expires_at = _timestamp(d["expires_at"])
            except ValueError as exc:
                ch.problem((*p, "expires_at"), str(exc))
        if button_id and description and target:
            buttons.append(ButtonSpec(button_id, description, target, expires_at))

    links: list[LinkSpec] = []
    seen = set()
    for i, d in enumerate(ch.value(doc, ("links",), "list", default=[])):
        p = ("links", i)
        d = ch.table(d, p, _LINK)
        link_id = ch.ident(d, (*p, "id"), seen, "link")
        name = ch.value(d, (*p, "name"), "str", required=True)
        target = ch.target(d, (*p, "target"), team_ids, rep_ids)
        if link_id and name and target:
            links.append(LinkSpec(link_id, name, target))

    if ch.problems:
        return None
    return SiteSpec(site, tuple(teams), tuple(reps), tuple(issues), tuple(buttons), tuple(links), settings, source)
