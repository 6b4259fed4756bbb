"""The site's directory (reps, teams, issues, buttons, links) and the audience sets built from it."""

from __future__ import annotations

from collections.abc import Iterable

from repconsole.core.engine.events import NO_REPS
from repconsole.core.errors import CommandError, Reason
from repconsole.core.model import (
    CUSTOMER,
    BrowserLink,
    Issue,
    QueueKind,
    QueueRef,
    Rep,
    RoutingMode,
    SiteConfig,
    SupportButton,
    Team,
    WaitingRule,
)

__all__ = ["Directory"]


class Directory:
    """Who and what exists on the site, by id, and the lookups every command starts with.

    It also keeps the building blocks of audiences (who may see what),
    because audiences are asked for on every change: the members of a queue
    and a rep alone are frozensets made once and shared, never rebuilt.

    Attributes:
        site: site-wide settings (grace period, fallback queue, key length).
        reps, teams, issues, buttons, links: by id.
    """

    def __init__(self, site: SiteConfig) -> None:
        self.site = site
        self.reps: dict[str, Rep] = {}
        self.teams: dict[str, Team] = {}
        self.issues: dict[str, Issue] = {}
        self.buttons: dict[str, SupportButton] = {}
        self.links: dict[str, BrowserLink] = {}
        # Audience building blocks, see members(): rep id -> {rep id}, team id -> members.
        self._alone: dict[str, frozenset[str]] = {}
        self._refs: dict[QueueRef, QueueRef] = {}
        self._team_members: dict[str, frozenset[str]] = {}
        self._everyone: frozenset[str] = frozenset()  # the audience of "rep" events: one set, shared
        # Whether the directory changed since an engine copy last heard of it (QueueEngine.changes_of
        # sends it whole then, and clears this).  Set by every change below; a caller that edits
        # directory objects in place (a reload renaming a team) sets it itself.
        self.changed = True

    # ------------------------------------------------------------------ setup

    def add_team(self, team_id: str, name: str, *, rule: WaitingRule | None = None, persistent: bool = False) -> Team:
        if team_id in self.teams:
            raise ValueError(f"duplicate team id {team_id!r}")
        team = Team(team_id, name, rule=rule, persistent=persistent)
        self.changed = True
        self.teams[team_id] = team
        return team

    def add_rep(
        self, rep_id: str, name: str, teams: Iterable[str], *, max_sessions: int | None, connected: bool,
        skills: Iterable[str] = (),
    ) -> Rep:
        if rep_id in self.reps:
            raise ValueError(f"duplicate rep id {rep_id!r}")
        if rep_id == CUSTOMER:
            raise ValueError(f"{CUSTOMER!r} is reserved")
        team_ids = set(teams)
        for t in team_ids:
            if t not in self.teams:
                raise ValueError(f"rep {rep_id!r}: unknown team {t!r}")
        rep = Rep(rep_id, name, team_ids, connected=connected, own_max_sessions=max_sessions, skills=frozenset(skills))
        self.changed = True
        rep.max_sessions = self.capacity_of(rep)
        rep.routed = any(self.teams[t].routing is not RoutingMode.NONE for t in team_ids)
        self.reps[rep_id] = rep
        for t in team_ids:
            self.teams[t].members.add(rep_id)
        return rep

    # ------------------------------------------------------ auto-assignment

    def capacity_of(self, rep: Rep) -> int:
        """The rep's maximum of concurrent sessions: their own, else the smallest of their teams', else the site's.

        The smallest, because a team's default is a promise to that team's
        customers about how thinly a rep is spread.
        """
        if rep.own_max_sessions is not None:
            return rep.own_max_sessions
        team_caps = [c for t in rep.teams if (c := self.teams[t].max_sessions) is not None]
        return min(team_caps) if team_caps else self.site.max_sessions_default

    def set_routing(self, team_id: str, mode: RoutingMode, skills: dict[str, str] | None = None) -> list[Rep]:
        """Set a team's routing (and skills map).  Returns the reps whose ``routed`` flag changed."""
        team = self.team(team_id)
        try:
            mode = RoutingMode(mode)
        except ValueError:
            raise CommandError(Reason.INVALID, f"unknown routing {mode!r}") from None
        team.routing = mode
        self.changed = True
        if skills is not None:
            team.skills = dict(skills)
        changed = []
        for rep_id in sorted(team.members):
            rep = self.reps[rep_id]
            routed = any(self.teams[t].routing is not RoutingMode.NONE for t in rep.teams)
            if routed != rep.routed:
                rep.routed = routed
                changed.append(rep)
        return changed

    def set_capacity(self, rep_id: str, max_sessions: int | None) -> Rep:
        """A rep's own maximum (None: the teams' or the site's default)."""
        rep = self.rep(rep_id)
        if max_sessions is not None and (not isinstance(max_sessions, int) or max_sessions < 0):
            raise CommandError(Reason.INVALID, "max_sessions must be a whole number, 0 or more")
        rep.own_max_sessions = max_sessions
        self.changed = True
        rep.max_sessions = self.capacity_of(rep)
        return rep

    def set_team_capacity(self, team_id: str, max_sessions: int | None) -> list[Rep]:
        """A team's default maximum for its members.  Returns the members whose capacity changed."""
        team = self.team(team_id)
        if max_sessions is not None and (not isinstance(max_sessions, int) or max_sessions < 0):
            raise CommandError(Reason.INVALID, "max_sessions must be a whole number, 0 or more")
        team.max_sessions = max_sessions
        self.changed = True
        changed = []
        for rep_id in sorted(team.members):
            rep = self.reps[rep_id]
            cap = self.capacity_of(rep)
            if cap != rep.max_sessions:
                rep.max_sessions = cap
                changed.append(rep)
        return changed

    def add_issue(self, code: str, name: str, category: str, team: str) -> Issue:
        if team not in self.teams:
            raise ValueError(f"issue {code!r}: unknown team {team!r}")
        issue = Issue(code, name, category, team)
        self.changed = True
        self.issues[code] = issue
        return issue

    def add_button(self, button_id: str, description: str, target: QueueRef, *, expires_at: float | None = None) -> SupportButton:
        self.check_target(target)
        button = SupportButton(button_id, description, target, expires_at)
        self.changed = True
        self.buttons[button_id] = button
        return button

    def add_link(
        self,
        link_id: str,
        name: str,
        target: QueueRef,
        *,
        issue: str | None = None,
        expires_at: float | None = None,
        revoked: bool = False,
        origins: tuple[str, ...] = (),
    ) -> BrowserLink:
        """Add the link, or replace the link of that id (an administrator changed or revoked it)."""
        self.check_target(target)
        if issue is not None and issue not in self.issues:
            raise CommandError(Reason.UNKNOWN_ISSUE, issue=issue)
        link = BrowserLink(link_id, name, target, issue, expires_at, revoked, tuple(origins))
        self.changed = True
        self.links[link_id] = link
        return link

    # ---------------------------------------------------------------- lookups

    def rep(self, rep_id: str) -> Rep:
        """The rep, or UNKNOWN_REP."""
        rep = self.reps.get(rep_id) if isinstance(rep_id, str) else None
        if rep is None:
            raise CommandError(Reason.UNKNOWN_REP, rep=rep_id)
        return rep

    def team(self, team_id: str) -> Team:
        """The team, or UNKNOWN_TEAM."""
        team = self.teams.get(team_id) if isinstance(team_id, str) else None
        if team is None:
            raise CommandError(Reason.UNKNOWN_TEAM, team=team_id)
        return team

    def check_target(self, target: QueueRef) -> None:
        if not isinstance(target, QueueRef):
            raise CommandError(Reason.INVALID, "target must be a queue")
        if target.is_personal:
            self.rep(target.id)
        else:
            self.team(target.id)

    def check_reachable(self, target: QueueRef) -> None:
        # A rep who is not connected would never see it, and no fallback ever
        # runs for them again: the customer would wait forever.  Same rule as
        # picking a rep on the public site.
        if target.is_personal and not self.reps[target.id].connected:
            raise CommandError(Reason.REP_OFFLINE, rep=target.id)

    def knows(self, q: QueueRef) -> bool:
        """Whether queue ``q`` belongs to a configured rep or team."""
        return q.id in self.reps if q.is_personal else q.id in self.teams

    def queue_name(self, q: QueueRef) -> str:
        if q.is_personal:
            return self.reps[q.id].name
        return f"team {self.teams[q.id].name}"

    # -------------------------------------------------------------- audiences

    def members(self, q: QueueRef) -> frozenset[str]:
        """Who may take from queue ``q``.  Cached: audiences ask for it on every change."""
        if q.kind is QueueKind.PERSONAL:
            return self.only(q.id)
        team = self.teams.get(q.id)
        if team is None:
            return NO_REPS
        members = self._team_members.get(q.id)
        # Members only ever join (add_rep), so a size check keeps the cache true.
        if members is None or len(members) != len(team.members):
            members = self._team_members[q.id] = frozenset(team.members)
        return members

    def only(self, rep_id: str) -> frozenset[str]:
        """``frozenset({rep_id})``, made once per rep."""
        alone = self._alone.get(rep_id)
        if alone is None:
            alone = self._alone[rep_id] = frozenset((rep_id,))
        return alone

    def everyone(self) -> frozenset[str]:
        """Every rep: the audience of "rep" events.

        The directory of reps (status, presence) is shared by everyone on the
        site: it is what the transfer and share pickers list.  One shared
        set: a new one per event would be kept by every event in the resume
        ring (O(reps) each: 64 KiB with 2,000 reps).  Reps only join.
        """
        if len(self._everyone) != len(self.reps):
            self._everyone = frozenset(self.reps)
        return self._everyone

    def ref(self, q: QueueRef) -> QueueRef:
        """The engine's one QueueRef for this queue (they are immutable).

        Sessions and their timelines point at it instead of each holding a
        copy: less memory per waiting session, fewer objects for the garbage
        collector to walk, and identity checks that usually settle equality.
        """
        return self._refs.setdefault(q, q)
