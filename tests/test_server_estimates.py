"""A console that signs in sees its teams' wait estimates at once: the snapshot carries them (issue 14).

Over real sockets against a real server, on a :class:`VirtualClock`: the
server publishes a team's estimate as an ``estimate`` event only when its
range changes, so a console that signs in later would show none until the
queue moved; its snapshot carries what the last event said.  docs/protocol.md,
"Auto-assignment".
"""

from __future__ import annotations

from pathlib import Path

from server_helpers import CustomerClient, RepClient, run, serving, write_site

from repconsole.protocol import EstimateEvent, EstimateView
from repconsole.server.customers import POSITION_EVERY
from repconsole.server.timers import VirtualClock


def test_a_console_signing_in_sees_a_number_for_a_team_with_data_and_no_data_for_one_without(tmp_path: Path) -> None:
    site = write_site(tmp_path)
    clock = VirtualClock()

    async def main() -> None:
        async with serving(site, tmp_path / "data", clock=clock) as server:
            alice = await RepClient.logged_in(server, "alice")  # net
            carol = await RepClient.logged_in(server, "carol")  # bill: connected and available, serves nobody
            # Networking serves four customers, one a minute.
            for i in range(4):
                clock.advance(60)
                ann = await CustomerClient.started(server, name=f"Customer {i}")
                await alice.ok("accept", session=ann.session)
                await alice.ok("end", session=ann.session)
                await ann.close()
            clock.advance(POSITION_EVERY)  # the server looks at the estimates: both teams' are published
            await alice.wait_event(lambda e: isinstance(e, EstimateEvent) and e.data.team == "net" and e.data.estimate is not None)
            bill = await carol.wait_event(lambda e: isinstance(e, EstimateEvent) and e.data.team == "bill")
            assert bill.data.estimate is None  # nobody served: no data ("we are busier than usual")
            await alice.drain()
            # What alice's console shows: the last estimate event of net (the range moved as customers came and went).
            shown = [e.data.estimate for e in alice.events if isinstance(e, EstimateEvent) and e.data.team == "net"][-1]
            assert isinstance(shown, EstimateView) and shown.seconds > 0 and shown.high >= 1

            # Erin (net and bill) signs in now: nothing changes, so no estimate event is due; her snapshot has both.
            erin = await RepClient.logged_in(server, "erin")
            await erin.until(lambda: erin.snapshot is not None)
            assert erin.snapshot is not None
            assert erin.snapshot.estimates == {"bill": None, "net": shown}
            await erin.drain()
            assert not any(isinstance(e, EstimateEvent) for e in erin.events)  # the snapshot was all she had
            # A rep of one team sees that team's only.
            dave = await RepClient.logged_in(server, "dave")  # hw: no member served, so no data either
            await dave.until(lambda: dave.snapshot is not None)
            assert dave.snapshot is not None and dave.snapshot.estimates == {"hw": None}

    run(main())
