"""Waiting-session rules: after N seconds in a team queue, mark overdue or move to an overflow team;
after the site's ``personal_overdue_after`` in a personal queue, mark overdue."""

from __future__ import annotations

from repconsole.core.clock import Clock
from repconsole.core.engine.directory import Directory
from repconsole.core.engine.queues import Queues
from repconsole.core.model import QueueKind, QueueRef, RuleAction, Session, SessionState, StepKind, TimelineStep, WaitingRule

__all__ = ["WaitingRules"]


class WaitingRules:
    """Setting a team's rule, and applying it when a session's rule timer fires.

    A rule's clock starts when a session enters a team queue
    (:meth:`Queues.enqueue` sets ``rule_deadline`` and the timer).
    """

    def __init__(self, clock: Clock, directory: Directory, queues: Queues) -> None:
        self._clock = clock
        self._dir = directory
        self._queues = queues

    def set(self, team_id: str, rule: WaitingRule | None) -> None:
        team = self._dir.team(team_id)
        if rule and rule.action is RuleAction.TRANSFER:
            self._dir.team(rule.overflow_team or "")
        team.rule = rule

    def fire(self, deadline: float, session_id: str) -> int:
        """Apply the rule whose timer was set for ``deadline``.  Returns 1 if it did, 0 if the timer was stale."""
        s = self._queues.live.get(session_id)
        # A timer is stale unless the session still waits for exactly this deadline.
        if s is None or s.state is not SessionState.WAITING or s.rule_deadline != deadline:
            return 0
        assert s.queue is not None
        if s.queue.kind is not QueueKind.TEAM:
            return self._fire_personal(s)
        teams = self._dir.teams
        team = teams[s.queue.id]
        rule = team.rule
        if rule is None:
            return 0
        before = self._queues.begin(s)
        now = self._clock()
        target = rule.overflow_team if rule.action is RuleAction.TRANSFER else None
        if target is not None and target != team.id and target not in s.rule_visited and target in teams:
            s.rule_visited.add(team.id)
            self._queues.enqueue(s, QueueRef.team(target), StepKind.RULE_TRANSFERRED, note=f"waited {rule.after:.0f}s in {team.name}")
        else:
            # Marking instead of transferring is also the ping-pong guard: a
            # rule never sends a session back to a team a rule moved it out of.
            s.overdue = True
            s.rule_deadline = None
            s.timeline.append(TimelineStep(now, StepKind.RULE_OVERDUE, queue=s.queue, note=f"waited {rule.after:.0f}s"))
        self._queues.commit(s, before)
        return 1

    def _fire_personal(self, s: Session) -> int:
        """The site's personal-queue rule: mark the customer overdue (never move them)."""
        after = self._dir.site.personal_overdue_after
        if after is None:
            return 0
        before = self._queues.begin(s)
        s.overdue = True
        s.rule_deadline = None
        s.timeline.append(TimelineStep(self._clock(), StepKind.RULE_OVERDUE, queue=s.queue, note=f"waited {after:.0f}s"))
        self._queues.commit(s, before)
        return 1
