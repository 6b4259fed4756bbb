"""Ended sessions: kept whole for a while, then remembered by number only."""

from __future__ import annotations

import random

import pytest

from repconsole.core import engine as engine_module
from repconsole.core.clock import ManualClock
from repconsole.core.engine import QueueEngine
from repconsole.core.errors import CommandError, Reason
from repconsole.core.intake import Intake


def test_old_ended_sessions_are_dropped_but_still_answer_session_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "ENDED_KEPT", 3)
    e = QueueEngine(ManualClock(), rng=random.Random(1))
    e.add_team("t", "T")
    e.add_rep("r", "R", ["t"])
    e.add_issue("i", "Issue", "Cat", "t")
    ids = []
    for n in range(5):
        s = e.start_with_issue("i", Intake(f"Customer {n}"))
        e.customer_leave(s.id)
        ids.append(s.id)
    assert len(e._ended) == 3
    # The two oldest are gone from memory, yet a command on them is refused
    # as "ended", not "unknown", and changes nothing.
    seq = e.seq
    for sid in ids[:2]:
        with pytest.raises(CommandError) as info:
            e.accept("r", sid)
        assert info.value.reason is Reason.SESSION_ENDED
    assert e.session(ids[-1]).end_reason == "customer left"
    with pytest.raises(CommandError) as info:
        e.accept("r", "S999")
    assert info.value.reason is Reason.UNKNOWN_SESSION
    assert e.seq == seq
