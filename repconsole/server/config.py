"""The server's site: the built-in demo, or a TOML file.

:func:`load_config` reads a TOML file (see docs/site.example.toml) into a
:class:`SiteSpec` and checks everything an engine would refuse later, so a
mistake stops the server before it listens, with a message that names the
file, the line and the key::

    site.toml:14: teams.network.rule.overflow_team: unknown team 'netwrk'

The file's shape is msgspec Structs: :class:`SiteFile` and its tables declare
the keys, their types, defaults, ranges and patterns, and refuse unknown keys
(a new section is a new Struct and a field of SiteFile).  What a Struct
cannot say (unknown or duplicate ids, origins, password hashes) is checked
after conversion.  Every mistake is reported at once, not just msgspec's
first, at the line :class:`TomlLines` finds for its key.

:func:`demo_site` is the simulator's site (repconsole.backend.world), with
the simulator's rep "me" called ``alex``: with no configuration the server
has something to log in to.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import itertools
import math
import random
import re
import tomllib
import types
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import msgspec
from msgspec import Meta, field

from repconsole.core.clock import Clock, ManualClock
from repconsole.core.engine import QueueEngine
from repconsole.core.model import CUSTOMER, QueueRef, RoutingMode, RuleAction, SiteConfig, WaitingRule
from repconsole.protocol.snippets import SNIPPET_NAME_LIMIT, SNIPPET_TEXT_LIMIT
from repconsole.server.auth import parse_hash
from repconsole.server.proxy import parse_network
from repconsole.server.tomllines import KeyPath, TomlLines

__all__ = [
    "AdminSettings",
    "ButtonSpec",
    "ClusterSettings",
    "ConfigError",
    "ConfigProblem",
    "IssueSpec",
    "LinkSpec",
    "RepSpec",
    "Routing",
    "RuleSpec",
    "ServerSettings",
    "SiteFile",
    "SiteSpec",
    "TeamSpec",
    "TomlLines",
    "build_engine",
    "demo_site",
    "load_config",
    "parse_listen",
    "parse_origin",
    "parse_public_url",
    "parse_redis_url",
]

DEMO_ME = "alex"
T = TypeVar("T")

# ------------------------------------------------------------ value types
#
# A constrained type may carry its own message in Meta(extra={"message": ...}):
# it is used for any mistake in such a value, its type or its range, and may
# name the value as {value!r}.  Other mistakes get a message made from
# msgspec's (see _message).

_ID_RULE = "1 to 64 letters, digits or _ . @ -, starting with a letter or digit"
_SECONDS = "must be a number of seconds, 0 or more"
_CENTURY = 100 * 365 * 86400.0  # an upper bound keeps inf out (TOML has it); no setting needs more


def _id(what: str) -> Meta:
    # \Z, not $: $ also matches before a final newline.
    return Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z", extra={"message": f"{{value!r}} is not a valid {what} id ({_ID_RULE})"})


def _between(low: int, high: int) -> Meta:
    return Meta(ge=low, le=high, extra={"message": f"must be a whole number between {low} and {high}"})


TeamId = Annotated[str, _id("team")]
RepId = Annotated[str, _id("rep")]
IssueId = Annotated[str, _id("issue")]
ButtonId = Annotated[str, _id("button")]
LinkId = Annotated[str, _id("link")]
Text = Annotated[str, Meta(pattern=r"\S", extra={"message": "must be a non-empty string"})]
Seconds = Annotated[float, Meta(ge=0, le=_CENTURY, extra={"message": _SECONDS})]  # ge=0 also refuses nan
Timestamp = Annotated[dt.datetime, Meta(tz=True)]  # an aware time: the server's clock is UTC
SessionCount = Annotated[int, _between(1, 1000)]
SkillId = Annotated[str, _id("skill")]


class Routing(enum.StrEnum):
    """``[teams.<id>] routing``: how the team's waiting sessions reach its reps (issue 14)."""

    NONE = "none"  # reps pull: accept, Get Next (the default)
    LEAST_BUSY = "least-busy"
    SKILLS = "skills"  # the issue's category names a skill (the team's skills map), then least busy

    @property
    def mode(self) -> RoutingMode:
        return RoutingMode(self.value.replace("-", "_"))

# ------------------------------------------------------------------ specs


class _Table(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A table of the site file: an unknown key is a typo, not to be ignored.

    Subclasses repeat frozen and kw_only: msgspec does not inherit kw_only, mypy neither.
    """


class RuleSpec(_Table, frozen=True, kw_only=True):
    """A team's waiting-session rule: after ``after`` seconds unaccepted, act."""

    # > 0, checked in _Reader.check_rule rather than by a Meta: a rule whose
    # `after` is wrong then still has its action and overflow team checked.
    after: float
    action: RuleAction
    overflow_team: str | None = None


class SnippetTable(_Table, frozen=True, kw_only=True):
    """``[[teams.<id>.snippets]]``: a canned message of the team (issue 14), changed only in the file."""

    name: Annotated[str, Meta(min_length=1, max_length=SNIPPET_NAME_LIMIT, pattern=r"\S")]
    text: Annotated[str, Meta(min_length=1, max_length=SNIPPET_TEXT_LIMIT, pattern=r"\S")]


class TeamTable(_Table, frozen=True, kw_only=True):
    """``[teams.<id>]``: a team without its id, which is the table's key."""

    name: Text
    persistent: bool = False  # keeps its sessions while none of its reps is logged in
    rule: RuleSpec | None = None
    routing: Routing = Routing.NONE
    # The members' capacity, unless a rep has their own (a rep in several teams: the smallest).
    max_sessions: SessionCount | None = None
    skills: dict[Text, SkillId] = field(default_factory=dict)  # routing = "skills": issue category -> skill
    leads: tuple[str, ...] = ()  # members who may change the team's snippets in the console (issue 14)
    snippets: tuple[SnippetTable, ...] = ()  # the team's canned messages of the file


class TeamSpec(TeamTable, frozen=True, kw_only=True):
    id: str  # the key of its [teams.<id>] table


class RepSpec(_Table, frozen=True, kw_only=True):
    id: RepId
    name: Text
    teams: tuple[str, ...] = ()
    max_sessions: SessionCount | None = None  # None: the smallest of their teams', else the site's default
    password_hash: str | None = None
    skills: tuple[SkillId, ...] = ()  # what "skills" routing matches issue categories against


class IssueSpec(_Table, frozen=True, kw_only=True):
    code: IssueId
    name: Text
    category: Text = ""
    team: str


class ButtonTable(_Table, frozen=True, kw_only=True):
    id: ButtonId
    description: Text
    target: str  # a QueueRef: parsed with the other references
    expires_at: Timestamp | None = None


class ButtonSpec(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    description: str
    target: QueueRef
    expires_at: float | None = None


class LinkTable(_Table, frozen=True, kw_only=True):
    id: LinkId
    name: Text
    target: str
    issue: str | None = None  # an issue code that labels the link's sessions
    expires_at: Timestamp | None = None
    origins: tuple[str, ...] = ()  # pages (https://host[:port]) that may use it, besides the server's own


class LinkSpec(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    target: QueueRef
    issue: str | None = None
    expires_at: float | None = None
    origins: tuple[str, ...] = ()


_ENGINE = SiteConfig()


class SiteTable(_Table, frozen=True, kw_only=True):
    """``[site]``: the engine's :class:`SiteConfig`, with its defaults."""

    grace_period: Seconds = _ENGINE.grace_period
    fallback_queue: str | None = None
    max_sessions_default: SessionCount = _ENGINE.max_sessions_default
    key_length: Annotated[int, _between(5, 32)] = _ENGINE.key_length
    key_failures_per_minute: Annotated[int, _between(1, 1000)] = _ENGINE.key_failures_per_minute
    # Seconds a customer may wait in a rep's personal queue before being marked overdue; absent: never.
    personal_overdue_after: Seconds | None = None
    # Auto-assignment (issue 14): seconds a rep has to answer an offer, and missed offers in a row that set them away.
    offer_timeout: Annotated[float, Meta(ge=5, le=600, extra={"message": "must be between 5 and 600 seconds"})] = _ENGINE.offer_timeout
    misses_before_away: Annotated[int, _between(1, 100)] = _ENGINE.misses_before_away


class ServerSettings(_Table, frozen=True, kw_only=True):
    """``[server]``: how the server treats connections (the site itself is in :class:`SiteSpec`)."""

    # Origins (https://host[:port]) whose pages may use the customer endpoint, besides the server's own.
    allowed_origins: tuple[str, ...] = ()
    # Events kept for a console to resume without a new snapshot; command answers are kept as long.
    resume_window: Seconds = 300.0
    # How long a login's token can resume.
    token_lifetime: Annotated[float, Meta(ge=60, le=_CENTURY, extra={"message": "must be at least 60 seconds"})] = 12 * 3600.0
    # How long a customer may be away (a page reload, a network switch) before their session ends; 0: never.
    customer_grace: Seconds = 120.0
    # Sessions one client address may start per minute (anyone can: this bounds spam); 0: no limit.
    customer_starts_per_minute: Annotated[int, Meta(ge=0, extra={"message": "must be a whole number, 0 (no limit) or more"})] = 30
    # The address customers and browsers reach the server at (https://support.example.com), for the
    # help-link snippet and "open in browser"; none: derived from the address the server listens on.
    public_url: str | None = None
    # Co-browsing, per session: the page's latest snapshot and changes kept for reps who start watching
    # late (bytes), and the bytes a second relayed.
    cobrowse_buffer: Annotated[int, _between(64 * 1024, 256 * 1024 * 1024)] = 8 * 1024 * 1024
    cobrowse_rate: Annotated[int, _between(1024, 1024 * 1024 * 1024)] = 256 * 1024
    # Presence: the server pings every connection every ping_interval seconds and gives up on one that
    # has not answered within ping_timeout: a frozen console is seen as lost within their sum.
    ping_interval: Annotated[float, Meta(gt=0, le=3600, extra={"message": "must be more than 0 and at most 3600 seconds"})] = 10.0
    ping_timeout: Annotated[float, Meta(gt=0, le=3600, extra={"message": "must be more than 0 and at most 3600 seconds"})] = 10.0
    # Seconds of CPU that password checks may take per second, all logins together (a flood of
    # logins with unknown usernames is refused beyond it, rate_limited, instead of eating the CPU).
    password_work: Annotated[float, Meta(gt=0, le=64, extra={"message": "must be more than 0 and at most 64 seconds"})] = 1.0
    # Reverse proxies (addresses or networks: "127.0.0.1", "10.0.0.0/8") whose forwarded_header says
    # who the client is, for rate limits and logs; from any other peer the header is ignored.
    trusted_proxies: tuple[str, ...] = ()
    forwarded_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    # Bytes that may wait unsent to one connection before it is closed as too slow (4408).
    send_buffer: Annotated[int, _between(64 * 1024, 256 * 1024 * 1024)] = 1024 * 1024


class AdminSettings(_Table, frozen=True, kw_only=True):
    """``[admin]``: where an administrator's tools read the server (docs/operations.md)."""

    # host:port of a second, plain-HTTP listener for GET /metrics and GET /status (keep it on a
    # private address: loopback, or a management network); none: no such listener.
    listen: str | None = None
    # A bearer token that lets GET /metrics and GET /status be read on the main port
    # (Authorization: Bearer TOKEN); none: they are not served there at all.
    metrics_token: Annotated[str, Meta(min_length=16, extra={"message": "must be at least 16 characters"})] | None = None


class ClusterSettings(_Table, frozen=True, kw_only=True):
    """``[cluster]``: several server processes on one Redis (docs/architecture.md "Cluster"); none: one process on SQLite."""

    # redis://host:port/db, rediss:// (TLS) or unix:///path; the server needs repconsole[cluster].
    redis_url: str | None = None
    # The organisation's name in the Redis keys (several organisations may share one Redis).
    organisation: Annotated[str, _id("organisation")] = "default"
    # How long the leader's lease lasts without a renewal (it renews every third of it).
    lease_ttl: Annotated[float, Meta(ge=1, le=60, extra={"message": "must be between 1 and 60 seconds"})] = 3.0


class SiteFile(_Table, frozen=True, kw_only=True):
    """The whole file: its sections, in the order an unknown key's message lists them."""

    site: SiteTable = field(default_factory=SiteTable)
    server: ServerSettings = field(default_factory=ServerSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    teams: dict[TeamId, TeamTable] = field(default_factory=dict)
    reps: Annotated[tuple[RepSpec, ...], Meta(min_length=1)]
    issues: tuple[IssueSpec, ...] = ()
    buttons: tuple[ButtonTable, ...] = ()
    links: tuple[LinkTable, ...] = ()


class SiteSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A checked site: what the engine is built from (:func:`build_engine`) and the server's settings."""

    site: SiteConfig
    teams: tuple[TeamSpec, ...]
    reps: tuple[RepSpec, ...]
    issues: tuple[IssueSpec, ...] = ()
    buttons: tuple[ButtonSpec, ...] = ()
    links: tuple[LinkSpec, ...] = ()
    server: ServerSettings = field(default_factory=ServerSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
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
        engine.add_team(
            t.id, t.name, persistent=t.persistent, routing=t.routing.mode, max_sessions=t.max_sessions, skills=dict(t.skills)
        )
    for t in spec.teams:  # rules name other teams: all of them exist by now
        if t.rule is not None:
            engine.set_rule(t.id, WaitingRule(t.rule.after, t.rule.action, t.rule.overflow_team))
    for r in spec.reps:
        # A rep is connected only while a console of theirs is: a rep who
        # never logged in cannot be picked on the support site, nor inherit.
        engine.add_rep(r.id, r.name, r.teams, max_sessions=r.max_sessions, connected=False, skills=r.skills)
    for i in spec.issues:
        engine.add_issue(i.code, i.name, i.category, i.team)
    for b in spec.buttons:
        engine.add_button(b.id, b.description, b.target, expires_at=b.expires_at)
    for link in spec.links:
        engine.add_link(link.id, link.name, link.target, issue=link.issue, expires_at=link.expires_at, origins=link.origins)
    engine.directory_changed = False  # the configuration's: a cluster's copies build the same (a reload carries changes)
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

    def rule(r: WaitingRule | None) -> RuleSpec | None:
        return RuleSpec(after=r.after, action=r.action, overflow_team=r.overflow_team) if r else None

    site = dataclasses.replace(scratch.site)
    if site.fallback_queue is not None:
        site.fallback_queue = target(site.fallback_queue)
    return SiteSpec(
        site=site,
        teams=tuple(
            TeamSpec(
                id=t.id, name=t.name, persistent=t.persistent, rule=rule(t.rule), routing=Routing(t.routing.value.replace("_", "-")),
                max_sessions=t.max_sessions, skills=dict(t.skills),
            )
            for t in scratch.teams.values()
        ),
        reps=tuple(
            RepSpec(id=rename(r.id), name=r.name, teams=tuple(sorted(r.teams)), max_sessions=r.max_sessions, skills=tuple(sorted(r.skills)))
            for r in scratch.reps.values()
        ),
        issues=tuple(IssueSpec(code=i.code, name=i.name, category=i.category, team=i.team) for i in scratch.issues.values()),
        buttons=tuple(
            ButtonSpec(id=rename(b.id), description=b.description, target=target(b.target), expires_at=b.expires_at)
            for b in scratch.buttons.values()
        ),
        links=tuple(LinkSpec(id=rename(k.id), name=k.name, target=target(k.target)) for k in scratch.links.values()),
    )


# ----------------------------------------------------------------- errors

def format_key(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'"{part}"'
            out += ("." if out else "") + text
    return out


@dataclasses.dataclass(frozen=True, slots=True)
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


# ---------------------------------------------------------------- reading

# msgspec's names of what it expected and got (``Expected `int`, got `str```).
_KINDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "an array",
    "object": "a table",
    "datetime": "a date and time such as 2030-06-30T23:59:59Z",
    "date": "a date",
    "time": "a time",
}
_GOT = {**_KINDS, "float": "a float", "bool": "a boolean"}  # "a whole number, not a number" would puzzle
_SAYINGS = {
    "Expected `datetime` with a timezone component": "needs a time zone (Z or +hh:mm): the server's clock is UTC",
    "Invalid RFC3339 encoded datetime": "must be " + _KINDS["datetime"],
    "Expected `array` of length >= 1": "must not be empty",
}


def _unwrap(tp: Any) -> tuple[Any, list[Meta]]:
    """``tp`` without ``Annotated`` and ``| None``, and the Meta it was annotated with."""
    metas: list[Meta] = []
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp, *extra = get_args(tp)
            metas += [m for m in extra if isinstance(m, Meta)]
        elif origin in (Union, types.UnionType) and len(arms := [a for a in get_args(tp) if a is not type(None)]) == 1:
            tp = arms[0]
        else:
            return tp, metas


def _message(error: msgspec.ValidationError, raw: object, tp: Any, path: KeyPath) -> str:
    """What is wrong with ``raw``, which msgspec could not convert to ``tp``."""
    shape, metas = _unwrap(tp)
    for meta in metas:
        if meta.extra and "message" in meta.extra:
            return str(meta.extra["message"]).format(value=raw)
    text = str(error).split(" - at `")[0]  # the path: the caller knows it, in the file's terms
    if isinstance(shape, type) and issubclass(shape, enum.Enum) and isinstance(raw, str):
        return f"unknown {path[-1]} {raw!r} (expected {' or '.join(str(m.value) for m in shape)})"
    if m := re.fullmatch(r"Expected `(\w+)[^`]*`, got `(\w+)`", text):
        return f"must be {_KINDS.get(m[1], m[1])}, not {_GOT.get(m[2], m[2])}"
    return _SAYINGS.get(text, text[:1].lower() + text[1:])


class _Reader:
    """Converts a parsed site file to a :class:`SiteSpec`, collecting every problem in it."""

    def __init__(self, file: str, text: str, doc: dict[str, Any]) -> None:
        self.file = file
        self.doc = doc
        self.lines = TomlLines(text)
        self.problems: list[ConfigProblem] = []
        self.unread: set[KeyPath] = set()  # array items left out of what convert() returned
        # References are checked against every id the document declares, even
        # in a table that is wrong itself: one mistake, one message.
        teams, reps = doc.get("teams"), doc.get("reps")
        self.team_ids = set(teams) if isinstance(teams, dict) else set()
        self.rep_ids = {r.get("id") for r in reps if isinstance(r, dict)} if isinstance(reps, list) else set()

    def problem(self, path: KeyPath, message: str) -> None:
        key = format_key(path)
        if all(p.key != key for p in self.problems):  # the first thing wrong with a key says it
            self.problems.append(ConfigProblem(self.file, self.lines.line_of(path), key, message))

    def convert(self, raw: object, tp: Any, path: KeyPath) -> Any:
        """``raw`` as a ``tp``.  On a mistake, every mistake in ``raw`` is reported and
        what could be read of it is returned (None: nothing), so that the checks
        after conversion still see the rest of the file.

        msgspec stops at the first mistake: below a table, a dict or an array
        that has one, each key or item is converted on its own.
        """
        try:
            return msgspec.convert(raw, tp, strict=True)
        except msgspec.ValidationError as exc:
            error = exc
        before = len(self.problems)
        shape, _ = _unwrap(tp)
        result: Any = None
        if isinstance(raw, dict) and isinstance(shape, type) and issubclass(shape, msgspec.Struct):
            result = self._table(raw, shape, path)
        elif isinstance(raw, dict) and get_origin(shape) is dict:
            key_type, value_type = get_args(shape)
            result = {}
            for k, v in raw.items():
                key, value = self.convert(k, key_type, (*path, k)), self.convert(v, value_type, (*path, k))
                if key is not None and value is not None:
                    result[key] = value
        elif isinstance(raw, list) and get_origin(shape) is tuple:
            items = [self.convert(item, get_args(shape)[0], (*path, i)) for i, item in enumerate(raw)]
            self.unread.update((*path, i) for i, item in enumerate(items) if item is None)
            result = tuple(item for item in items if item is not None)
        if len(self.problems) == before:  # nothing wrong inside: it is the value itself (its type, its length)
            self.problem(path, _message(error, raw, tp, path))
        return result

    def _table(self, raw: dict[str, Any], cls: type[msgspec.Struct], path: KeyPath) -> Any:
        fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
        before = len(self.problems)
        values: dict[str, Any] = {}
        for key, value in raw.items():
            f = fields.get(key)
            if f is None:
                self.problem((*path, key), f"unknown key (expected one of: {', '.join(fields)})")
            elif (converted := self.convert(value, f.type, (*path, key))) is not None:
                values[f.name] = converted
        if len(self.problems) == before:  # as msgspec: a missing key counts once the keys there are right
            for f in fields.values():
                if f.required and f.encode_name not in raw:
                    self.problem((*path, f.encode_name), "is required")
        try:
            return cls(**values)  # a wrong key is read as its default, for the checks that follow
        except TypeError:  # a required key is missing or wrong
            return None

    def numbered(self, path: KeyPath, items: Iterable[T]) -> Iterator[tuple[KeyPath, T]]:
        """Each of ``items`` with its path: an item convert() left out still has its number."""
        numbers = (i for i in itertools.count() if (*path, i) not in self.unread)
        return (((*path, i), item) for i, item in zip(numbers, items, strict=False))

    def each(self, section: str, items: Iterable[T], id_key: str = "id") -> Iterator[tuple[KeyPath, T]]:
        """The tables of an array (``[[reps]]``) with their paths, reporting duplicate ids on the way."""
        seen: set[str] = set()
        for path, item in self.numbered((section,), items):
            ident = getattr(item, id_key)
            if ident in seen:
                self.problem((*path, id_key), f"duplicate {section[:-1]} id {ident!r}")
            seen.add(ident)
            yield path, item

    def target(self, text: str, path: KeyPath) -> QueueRef | None:
        try:
            q = QueueRef.parse(text)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        if q.id not in (self.rep_ids if q.is_personal else self.team_ids):
            self.problem(path, f"unknown {'rep' if q.is_personal else 'team'} {q.id!r}")
            return None
        return q

    def origins(self, path: KeyPath, texts: Iterable[str]) -> tuple[str, ...]:
        """Origins, normalised; each one that is not an origin is reported."""
        out: list[str] = []
        for item, text in self.numbered(path, texts):
            try:
                out.append(parse_origin(text))
            except ValueError as exc:
                self.problem(item, str(exc))
        return tuple(out)

    def check_rule(self, team_id: str, rule: RuleSpec) -> None:
        path = ("teams", team_id, "rule")
        if not (rule.after > 0 and math.isfinite(rule.after)):
            self.problem((*path, "after"), "must be more than 0 seconds" if rule.after == 0 else _SECONDS)
        overflow = rule.overflow_team
        if overflow is None:
            if rule.action is RuleAction.TRANSFER:
                self.problem((*path, "overflow_team"), "is required when action is 'transfer'")
        elif rule.action is not RuleAction.TRANSFER:
            self.problem((*path, "overflow_team"), "only a 'transfer' rule has an overflow team")
        elif overflow not in self.team_ids:
            self.problem((*path, "overflow_team"), f"unknown team {overflow!r}")
        elif overflow == team_id:
            self.problem((*path, "overflow_team"), "a team cannot overflow into itself")

    def check_routing(self, team_id: str, team: TeamTable, categories: set[str]) -> None:
        path = ("teams", team_id, "skills")
        if team.skills and team.routing is not Routing.SKILLS:
            self.problem(path, "only a team with routing = 'skills' has a skills map")
        elif team.routing is Routing.SKILLS and not team.skills:
            self.problem(path, "is required when routing is 'skills' (issue category -> skill)")
        for category in team.skills:
            if category not in categories:
                known = ", ".join(repr(c) for c in sorted(categories)) or "none"
                self.problem((*path, category), f"no issue has category {category!r} (the issues' categories: {known})")

    def check_cluster(self, cluster: ClusterSettings) -> None:
        if cluster.redis_url is None:
            if "cluster" in self.doc:
                self.problem(("cluster",), "redis_url is missing: [cluster] needs redis_url = \"redis://host:port/0\" (or leave [cluster] out)")
            return
        try:
            parse_redis_url(cluster.redis_url)
        except ValueError as exc:
            self.problem(("cluster", "redis_url"), str(exc))
            return
        import importlib.util

        if importlib.util.find_spec("redis") is None:
            self.problem(("cluster", "redis_url"), "needs redis-py: pip install \"repconsole[server,cluster]\"")

    def read(self, source: Path) -> SiteSpec | None:
        """The spec, or None after reporting every problem."""
        file: SiteFile | None = self.convert(self.doc, SiteFile, ())
        if file is None:  # the top level itself is wrong (no reps): nothing to check references against
            return None
        s = file.site
        fallback = None if s.fallback_queue is None else self.target(s.fallback_queue, ("site", "fallback_queue"))
        site = SiteConfig(
            s.grace_period, fallback, s.key_length, s.key_failures_per_minute, s.max_sessions_default, s.personal_overdue_after,
            s.offer_timeout, s.misses_before_away,
        )  # fmt: skip

        origins = self.origins(("server", "allowed_origins"), file.server.allowed_origins)
        proxies: list[str] = []
        for item, text in self.numbered(("server", "trusted_proxies"), file.server.trusted_proxies):
            try:
                proxies.append(str(parse_network(text)))
            except ValueError as exc:
                self.problem(item, str(exc))

        categories = {i.category for i in file.issues}
        for team_id, t in file.teams.items():
            if t.rule is not None:
                self.check_rule(team_id, t.rule)
            self.check_routing(team_id, t, categories)

        for path, rep in self.each("reps", file.reps):
            if rep.id == CUSTOMER:
                self.problem((*path, "id"), f"{CUSTOMER!r} is reserved for the customer's chat lines")
            for team_path, team in self.numbered((*path, "teams"), rep.teams):
                if team not in self.team_ids:
                    self.problem(team_path, f"unknown team {team!r}")
            if rep.password_hash is not None:
                try:
                    parse_hash(rep.password_hash)
                except ValueError as exc:
                    self.problem((*path, "password_hash"), f"{exc} (make one with: repconsole-server passwd USERNAME)")

        members = {(team, r.id) for r in file.reps for team in r.teams}
        for team_id, t in file.teams.items():
            for lead_path, lead in self.numbered(("teams", team_id, "leads"), t.leads):
                if (team_id, lead) not in members:
                    self.problem(lead_path, f"{lead!r} is not a member of this team (a rep whose teams include {team_id!r})")

        for path, issue in self.each("issues", file.issues, "code"):
            if issue.team not in self.team_ids:
                self.problem((*path, "team"), f"unknown team {issue.team!r}")

        buttons: list[ButtonSpec] = []
        for path, b in self.each("buttons", file.buttons):
            if target := self.target(b.target, (*path, "target")):
                expires_at = b.expires_at.timestamp() if b.expires_at else None
                buttons.append(ButtonSpec(id=b.id, description=b.description, target=target, expires_at=expires_at))

        issue_codes = {i.code for i in file.issues}
        links: list[LinkSpec] = []
        for path, k in self.each("links", file.links):
            if k.issue is not None and k.issue not in issue_codes:
                self.problem((*path, "issue"), f"unknown issue {k.issue!r}")
            link_origins = self.origins((*path, "origins"), k.origins)
            if target := self.target(k.target, (*path, "target")):
                expires_at = k.expires_at.timestamp() if k.expires_at else None
                links.append(LinkSpec(id=k.id, name=k.name, target=target, issue=k.issue, expires_at=expires_at, origins=link_origins))

        public_url = file.server.public_url
        if public_url is not None:
            try:
                public_url = parse_public_url(public_url)
            except ValueError as exc:
                self.problem(("server", "public_url"), str(exc))

        if file.admin.listen is not None:
            try:
                parse_listen(file.admin.listen)
            except ValueError as exc:
                self.problem(("admin", "listen"), str(exc))

        self.check_cluster(file.cluster)

        if self.problems:
            return None
        return SiteSpec(
            site=site,
            teams=tuple(TeamSpec(id=i, **msgspec.structs.asdict(t)) for i, t in file.teams.items()),
            reps=file.reps,
            issues=file.issues,
            buttons=tuple(buttons),
            links=tuple(links),
            server=msgspec.structs.replace(file.server, allowed_origins=origins, public_url=public_url, trusted_proxies=tuple(proxies)),
            admin=file.admin,
            cluster=file.cluster,
            source=source,
        )


def parse_origin(text: str) -> str:
    """``scheme://host[:port]``, normalised, or ValueError saying why not."""
    if text.strip().lower() == "null":
        raise ValueError("'null' is never allowed: it is the origin of sandboxed frames and local files")
    u = urllib.parse.urlsplit(text.strip())
    if u.scheme not in ("http", "https") or not u.hostname or u.path not in ("", "/") or u.query or u.fragment:
        raise ValueError(f"{text!r} is not an origin such as https://support.example.com[:port]")
    port = f":{u.port}" if u.port is not None else ""
    return f"{u.scheme}://{u.hostname}{port}"


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:9102`` for IPv6) as (host, port), or ValueError saying why not."""
    host, sep, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not an address such as 127.0.0.1:9102")
    return host, int(port)


def parse_redis_url(text: str) -> str:
    """A Redis URL redis-py accepts: redis://host[:port][/db], rediss://... (TLS) or unix:///path."""
    try:
        url = urllib.parse.urlsplit(text)
        url.port  # noqa: B018  (raises ValueError for a port that is not a number or out of range)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a Redis URL: {exc}") from None
    if url.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"{text!r} is not a Redis URL (redis://host:port/0, rediss://... or unix:///path)")
    if url.scheme == "unix" and not url.path:
        raise ValueError(f"{text!r} names no socket path (unix:///run/redis/redis.sock)")
    if url.scheme != "unix" and not url.hostname:
        raise ValueError(f"{text!r} names no host (redis://host:port/0)")
    db = url.path.lstrip("/")
    if url.scheme != "unix" and db and not db.isdigit():
        raise ValueError(f"{text!r}: the database after the host is a number, not {db!r}")
    return text


def parse_public_url(text: str) -> str:
    """``scheme://host[:port][/path]`` without a trailing slash, or ValueError saying why not."""
    u = urllib.parse.urlsplit(text.strip())
    if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment:
        raise ValueError(f"{text!r} is not a URL such as https://support.example.com")
    try:
        port = f":{u.port}" if u.port is not None else ""
    except ValueError:
        raise ValueError(f"{text!r} has no valid port") from None
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return f"{u.scheme}://{host}{port}{u.path.rstrip('/')}"


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
    reader = _Reader(name, text, doc)
    spec = reader.read(path)
    if spec is None:
        raise ConfigError(sorted(reader.problems, key=lambda p: p.line or 0))  # in the file's order
    return spec
