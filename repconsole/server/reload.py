"""A new configuration applied to a running server (SIGHUP; docs/operations.md).

:func:`plan` compares the running site with a checked new one and says what
changes, or why the new one cannot be applied live (:class:`ReloadRefused`:
the server keeps the old one).  :func:`apply` makes the changes to a running
engine, in one step, so that what the engine announces is committed and sent.

What changes live:

* ``[site]`` (grace period, fallback queue, key length and limits, the
  default session cap) and the ``[server]`` limits (customer starts per
  minute, customer grace, resume window, token lifetime, allowed origins,
  public URL, co-browsing buffer and rate for new streams), and
  ``[admin] metrics_token``;
* teams: new ones, names, ``persistent``, ``leads`` and ``snippets`` (issue 14), rules (a rule's clock starts when a
  session enters the queue: a changed rule applies to sessions that enter
  from then on);
* reps: new ones, names, session caps, skills, password hashes, and joining teams;
* auto-assignment (issue 14): a team's ``routing``, ``skills`` map and
  ``max_sessions``, ``[site] offer_timeout`` and ``misses_before_away``:
  through the engine's ``set_routing``, ``set_team_capacity``,
  ``set_capacity`` and ``set_skills``, so open offers that no longer fit are
  withdrawn and the teams route again at once.  Turning routing on closes
  version 2 consoles (as any team change does, see below) and refuses their
  resume: they cannot be offered sessions (docs/protocol.md, Versions);
* issues and buttons: new and changed ones; buttons may go;
* the configuration's links: new, changed and removed ones.

What needs a restart, and is refused: removing a team, a rep or an issue, a
rep leaving a team (sessions may wait in a queue that would vanish, or be
owned by a rep who could no longer see them), and ``[admin] listen`` (only
noted: it takes effect at the next restart).

A change to the directory (teams, reps, issues, buttons, links) is in every
console's snapshot but in no event: the server closes the consoles with 1001
and makes their resume a fresh snapshot.  A reload that changes only limits
disturbs no one.

In a cluster (``[cluster]``) a reload is the organisation's, coordinated by
its leader (:mod:`repconsole.server.cluster.reconfig`): the engine part
(:func:`apply`) runs once, on the leader, in a step whose changes carry the
directory to every follower's copy; each process takes its own settings
(:func:`take_settings`).  :func:`config_digest` tells whether two processes
read the same configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec

from repconsole.core.engine import QueueEngine
from repconsole.core.model import RoutingMode, WaitingRule
from repconsole.protocol import CloseCode
from repconsole.server.config import RepSpec, SiteSpec

if TYPE_CHECKING:
    from repconsole.server.app import Server
    from repconsole.server.cluster.records import Record

__all__ = ["Plan", "ReloadRefused", "apply", "config_digest", "plan", "reload_server", "take_settings"]

# [admin] keys read once at start: changing one is noted in the log, not applied.
RESTART_ONLY_ADMIN = ("listen",)


class ReloadRefused(Exception):
    """The new configuration is valid, but cannot be applied without a restart."""

    def __init__(self, reasons: Iterable[str]) -> None:
        self.reasons = list(reasons)
        super().__init__("; ".join(self.reasons))


@dataclasses.dataclass(frozen=True, slots=True)
class Plan:
    """What a reload changes: ``changes`` in words, for the log; ``directory``: whether consoles must re-sync."""

    changes: tuple[str, ...]
    directory: bool
    notes: tuple[str, ...] = ()


def _differs(a: object, b: object) -> bool:
    return bool(msgspec.to_builtins(a) != msgspec.to_builtins(b))


def plan(old: SiteSpec, new: SiteSpec) -> Plan:
    """What applying ``new`` over ``old`` changes.  Raises ReloadRefused for what needs a restart."""
    refused: list[str] = []
    changes: list[str] = []
    notes: list[str] = []
    old_teams, new_teams = {t.id: t for t in old.teams}, {t.id: t for t in new.teams}
    old_reps, new_reps = {r.id: r for r in old.reps}, {r.id: r for r in new.reps}
    old_issues, new_issues = {i.code: i for i in old.issues}, {i.code: i for i in new.issues}
    refused += [f"teams.{t}: removing a team needs a restart" for t in sorted(old_teams.keys() - new_teams.keys())]
    refused += [f"reps: removing rep {r!r} needs a restart" for r in sorted(old_reps.keys() - new_reps.keys())]
    refused += [f"issues: removing issue {i!r} needs a restart" for i in sorted(old_issues.keys() - new_issues.keys())]
    for rep_id, rep in new_reps.items():
        was = old_reps.get(rep_id)
        if was is not None and set(was.teams) - set(rep.teams):
            left = ", ".join(sorted(set(was.teams) - set(rep.teams)))
            refused.append(f"reps: rep {rep_id!r} leaving {left} needs a restart")
    if _differs(old.cluster, new.cluster):
        refused.append("[cluster]: changing it needs a restart")
    if refused:
        raise ReloadRefused(refused)

    if old.site != new.site:
        changes.append("[site]")
    if _differs(old.server, new.server):
        keys = [f for f in old.server.__struct_fields__ if getattr(old.server, f) != getattr(new.server, f)]
        changes.append("[server] " + ", ".join(keys))
    for key in RESTART_ONLY_ADMIN:
        if getattr(old.admin, key) != getattr(new.admin, key):
            notes.append(f"admin.{key} takes effect at the next restart")
    if old.admin.metrics_token != new.admin.metrics_token:
        changes.append("[admin] metrics_token")

    directory: list[str] = []
    directory += [f"new team {t}" for t in sorted(new_teams.keys() - old_teams.keys())]
    directory += [f"team {t}" for t in new_teams.keys() & old_teams.keys() if _differs(new_teams[t], old_teams[t])]
    directory += [f"new rep {r}" for r in sorted(new_reps.keys() - old_reps.keys())]
    directory += [f"rep {r}" for r in new_reps.keys() & old_reps.keys() if _differs(_public(new_reps[r]), _public(old_reps[r]))]
    changes += [f"rep {r} password" for r in new_reps.keys() & old_reps.keys() if new_reps[r].password_hash != old_reps[r].password_hash]
    if _differs(old.issues, new.issues):
        directory.append("issues")
    if _differs(old.buttons, new.buttons):
        directory.append("buttons")
    if _differs(old.links, new.links):
        directory.append("links")
    return Plan(tuple(changes + sorted(directory)), bool(directory), tuple(notes))


def _public(rep: RepSpec) -> RepSpec:
    """A rep as consoles see it: without the password hash."""
    return msgspec.structs.replace(rep, password_hash=None, teams=tuple(sorted(rep.teams)))


def apply(engine: QueueEngine, old: SiteSpec, new: SiteSpec) -> None:
    """Change a running engine from ``old`` to ``new`` (planned: :func:`plan` raised nothing).

    Call inside a runtime step: the reps' changes are announced as ``rep``
    events, which the step commits and sends.
    """
    engine.directory_changed = True  # names change in place below: in a cluster, the step carries the directory
    engine.site = dataclasses.replace(new.site)
    for t in new.teams:
        team = engine.teams.get(t.id)
        if team is None:
            engine.add_team(t.id, t.name, persistent=t.persistent)
        else:
            team.name, team.persistent = t.name, t.persistent
    for t in new.teams:  # rules name other teams: all of them exist by now
        engine.set_rule(t.id, WaitingRule(t.rule.after, t.rule.action, t.rule.overflow_team) if t.rule else None)
    for r in new.reps:
        rep = engine.reps.get(r.id)
        if rep is None:
            engine.add_rep(r.id, r.name, r.teams, max_sessions=r.max_sessions, connected=False, skills=r.skills)
            engine.set_status(r.id, engine.reps[r.id].status)  # announces the new rep to everyone
            continue
        joined = set(r.teams) - rep.teams
        if rep.name == r.name and not joined:
            continue
        rep.name = r.name
        for team_id in joined:
            rep.teams.add(team_id)
            engine.teams[team_id].members.add(r.id)  # members only join: the engine's audience caches stay true
        engine.set_status(r.id, rep.status)  # announces the changed rep to everyone
    # Auto-assignment (issue 14) through the engine's own calls: each withdraws the offers that no
    # longer fit, routes again, and announces the reps whose view changed.  Teams first (a joined
    # team's routing and capacity), then each rep's own capacity, which also takes a new site default.
    for t in new.teams:
        team = engine.teams[t.id]
        members = {r.id for r in new.reps if t.id in r.teams}
        if team.routing is not t.routing.mode or team.skills != t.skills or members - _routed_members(engine, t.id):
            engine.set_routing(t.id, t.routing.mode, dict(t.skills))
        if team.max_sessions != t.max_sessions:
            engine.set_team_capacity(t.id, t.max_sessions)
    for r in new.reps:
        rep = engine.reps[r.id]
        if rep.own_max_sessions != r.max_sessions or rep.max_sessions != _capacity(engine, r.id):
            engine.set_capacity(r.id, r.max_sessions)
        if rep.skills != frozenset(r.skills):
            engine.set_skills(r.id, r.skills)
    for i in new.issues:
        engine.add_issue(i.code, i.name, i.category, i.team)
    for b in old.buttons:
        engine.buttons.pop(b.id, None)
    for b in new.buttons:
        engine.add_button(b.id, b.description, b.target, expires_at=b.expires_at)
    for link in old.links:
        engine.links.pop(link.id, None)
    for link in new.links:
        engine.add_link(link.id, link.name, link.target, issue=link.issue, expires_at=link.expires_at, origins=link.origins)


def _routed_members(engine: QueueEngine, team_id: str) -> set[str]:
    """The team's members whose ``routed`` flag is what their teams' routing says (a rep who just
    joined a routed team is not among them until set_routing looks at them)."""
    teams = engine.teams
    return {
        r for r in teams[team_id].members
        if engine.reps[r].routed == any(teams[t].routing is not RoutingMode.NONE for t in engine.reps[r].teams)
    }  # fmt: skip


def _capacity(engine: QueueEngine, rep_id: str) -> int:
    """The capacity in force the rep's settings give: their own, else the smallest of their teams', else the site's."""
    rep = engine.reps[rep_id]
    if rep.own_max_sessions is not None:
        return rep.own_max_sessions
    caps = [c for t in rep.teams if (c := engine.teams[t].max_sessions) is not None]
    return min(caps) if caps else engine.site.max_sessions_default


def config_digest(spec: SiteSpec) -> str:
    """SHA-256 (hex) of the parsed configuration, wherever its file is: two processes of a cluster
    run the same configuration when their digests are equal (``check-config`` prints it)."""
    canonical = msgspec.json.encode(msgspec.structs.replace(spec, source=None), order="sorted")
    return hashlib.sha256(canonical).hexdigest()


def reload_server(server: Server, spec: SiteSpec, record: Record | None = None) -> Plan:
    """Apply ``spec``, checked, to a running server.  Raises ReloadRefused, and changes nothing,
    when it needs a restart.  In a cluster only the leader applies, with the ``record`` of the
    reload for the log (cluster/reconfig.py); followers take the engine part from the log."""
    rt = server.runtime
    assert rt is not None and server.customers is not None
    if spec.demo != server.spec.demo:
        raise ReloadRefused(["the demo site and a configuration file do not replace each other live"])
    if rt.member is not None and (record is None or rt.follows):
        raise ReloadRefused(["in a cluster the organisation's leader applies a reload (a SIGHUP to any process asks it)"])
    change = plan(server.spec, spec)
    with rt.step():
        apply(rt.engine, server.spec, spec)
        if record is not None:
            rt.replicate(record)
    take_settings(server, spec, change)
    return change


def take_settings(server: Server, spec: SiteSpec, change: Plan) -> None:
    """The process's own part of a reload (its engine has the new directory already): the
    configuration it serves by, its limits, and a fresh snapshot for consoles if the directory changed."""
    rt = server.runtime
    assert rt is not None and server.customers is not None
    server.spec = rt.spec = server.passwords.spec = spec
    settings = spec.server
    server.apply_settings(settings)  # trusted proxies, public origins, the password budget, pings
    rt.fanout.resume_window = rt.answers.keep = settings.resume_window
    server.customers.reconfigure(settings)
    if server.cobrowse is not None:
        server.cobrowse.reconfigure(settings)
    if server.links is not None:
        server.links.reconfigure(spec)
    if change.directory:
        # Consoles hold the directory in their snapshot and no event changes it there: they resume to a new one.
        rt.fanout.flush()
        server.resync_floor = rt.engine.seq
        for link in list(rt.fanout.links()):
            rt.loop.create_task(link.ws.close(CloseCode.GOING_AWAY, "the site's configuration changed: resume"))
