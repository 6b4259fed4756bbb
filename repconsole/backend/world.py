"""The simulator's synthetic support site: teams, reps, issues, buttons, links.

Everything a customer can type is drawn from small, plausible pools with a
seeded generator, so the same seed gives the same customers.
"""

from __future__ import annotations

import html
import random
from dataclasses import dataclass
from typing import ClassVar

from repconsole.core.engine import QueueEngine
from repconsole.core.intake import Intake
from repconsole.core.model import Priority, QueueRef, RoutingMode, RuleAction, WaitingRule

__all__ = ["ME", "ROUTED_TEAMS", "BrowserPage", "World", "build_site", "start_routing"]

ME = "me"

TEAMS = [
    # id, name, waiting-session rule
    ("network", "Networking", WaitingRule(180, RuleAction.TRANSFER, "accounts")),
    ("accounts", "Accounts & Billing", WaitingRule(150, RuleAction.TRANSFER, "network")),
    ("software", "Software", WaitingRule(240, RuleAction.MARK_OVERDUE)),
    ("hardware", "Hardware", WaitingRule(300, RuleAction.MARK_OVERDUE)),
]
MY_TEAMS = ["network", "accounts", "software"]
# Auto-assignment (issue 14): team id -> routing and its members' default capacity.
ROUTED_TEAMS = {"network": (RoutingMode.LEAST_BUSY, 3)}

PEERS = [
    ("priya", "Priya Raman", ["network", "software"]),
    ("tom", "Tom Becker", ["network", "hardware"]),
    ("lucia", "Lucía Ortega", ["accounts"]),
    ("kenji", "Kenji Watanabe", ["software", "hardware"]),
    ("amara", "Amara Okafor", ["accounts", "software"]),
    ("sven", "Sven Lindqvist", ["network", "accounts", "hardware"]),
]

ISSUES = [
    ("vpn", "VPN won't connect", "Network", "network"),
    ("wifi", "Office Wi-Fi drops", "Network", "network"),
    ("dns", "Website not loading", "Network", "network"),
    ("invoice", "Invoice question", "Billing", "accounts"),
    ("refund", "Refund request", "Billing", "accounts"),
    ("login", "Can't sign in", "Accounts", "accounts"),
    ("install", "Installation fails", "Software", "software"),
    ("crash", "Application crashes", "Software", "software"),
    ("update", "Update stuck", "Software", "software"),
    ("printer", "Printer offline", "Hardware", "hardware"),
    ("laptop", "Laptop won't boot", "Hardware", "hardware"),
    ("screen", "Display flickers", "Hardware", "hardware"),
]

FIRST = [
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Mateo", "Sofia", "Lucas", "Mia", "Ethan", "Chloé", "Arjun", "Yuki",
    "Fatima", "Hannah", "Jonas", "Grace", "Omar", "Isabella", "Daniel", "Zoe", "Samuel", "Leila", "Marco", "Nina",
    "Kwame", "Elena", "Ravi", "Aisha", "Felix", "Ingrid", "Diego", "Mei", "Patrick", "Anya", "Tobias",
]
LAST = [
    "Smith", "Johnson", "García", "Müller", "Rossi", "Kowalski", "Nguyen", "Kim", "Patel", "Silva", "Dubois",
    "O'Brien", "Jensen", "Novak", "Haddad", "Tanaka", "Costa", "Schmidt", "Ivanova", "Mensah", "Andersson",
    "Lopez", "Fischer", "Moreau", "Chen", "Walker", "Yilmaz", "Bianchi", "Petrov", "Hughes",
]
COMPANIES = [
    "Acme Corp", "Globex", "Initech", "Umbrella Health", "Stark Logistics", "Wayne Foods", "Hooli", "Vandelay Imports",
    "Soylent Energy", "Tyrell Systems", "Cyberdyne Retail", "Wonka Confections", "Pied Piper", "Dunder Mifflin",
    "Blue Sun", "Massive Dynamic", "Oceanic Air", "Gringotts Bank", "Monarch Solutions", "Nakatomi Trading",
]
PLATFORMS = ["Windows 11", "Windows 10", "macOS 15", "macOS 14", "Ubuntu 24.04", "iOS 18", "Android 15", "ChromeOS"]
LOCALES = ["en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "ja-JP", "pt-BR", "nl-NL"]
DETAILS = [
    "It worked yesterday, this morning it just stopped.",
    "I already restarted twice.",
    "Error code 0x80070005 when I click install.",
    "Only happens on the office network, fine at home.",
    "Our whole team is affected, please hurry.",
    "I was charged twice this month.",
    "The screen goes black after the logo.",
    "",
    "",
]
OPENERS = [
    "Hi, is anyone there?",
    "Hello! Thanks for picking this up.",
    "Hi — I've been waiting a while, glad you're here.",
    "Good morning. I hope you can help.",
]
REPLIES = [
    "OK, one moment, let me try that.",
    "That didn't change anything, unfortunately.",
    "Done. It shows a different message now.",
    "Yes, I can see that.",
    "Should I restart first?",
    "It's working now! Thank you so much.",
    "Hmm, where do I find that setting?",
    "I'm on the Wi-Fi, not the cable.",
]
TEAM_CHATTER = [
    "Heads up: VPN gateway in Frankfurt is flaky this morning.",
    "Anyone free to take an escalated billing call?",
    "Printer driver 4.2 fixes the offline issue, FYI.",
    "Coffee machine on 3 is fixed ☕",
    "Queue's getting long, can someone jump on Get Next?",
    "I'll be away for 10 minutes.",
    "New known issue: update 24.3 stuck at 87% — workaround in the KB.",
    "Thanks for covering earlier!",
]
PAGES = [
    ("https://shop.acme.example/checkout", "Acme Store — Checkout", "Payment failed: card declined (code 51)."),
    ("https://portal.globex.example/settings/security", "Globex Portal — Security settings", "Two-factor setup: QR code won't scan."),
    ("https://app.initech.example/reports/tps", "Initech — TPS reports", "Export to PDF produces an empty file."),
    ("https://bank.gringotts.example/transfer", "Gringotts — New transfer", "The Continue button is greyed out."),
]


@dataclass(frozen=True, slots=True)
class BrowserPage:
    url: str
    html: str


def build_site(engine: QueueEngine, *, my_name: str = "Alex Morgan") -> None:
    """Populate ``engine`` with the simulator's teams, reps, issues, buttons and links."""
    for team_id, name, rule in TEAMS:
        engine.add_team(team_id, name, rule=rule, persistent=team_id == "software")
    engine.add_rep(ME, my_name, MY_TEAMS, max_sessions=6)
    for rep_id, name, teams in PEERS:
        engine.add_rep(rep_id, name, teams, max_sessions=4)
    for code, name, category, team in ISSUES:
        engine.add_issue(code, name, category, team)
    engine.add_button("btn-me", f"{my_name}'s desk button", QueueRef.personal(ME))
    engine.add_button("btn-priya", "Priya's desk button", QueueRef.personal("priya"))
    for team_id, name, _ in TEAMS:
        engine.add_button(f"btn-{team_id}", f"{name} Support Button", QueueRef.team(team_id))
    engine.add_link("link-me", f"Help from {my_name}", QueueRef.personal(ME))
    engine.add_link("link-software", "Product help link", QueueRef.team("software"))
    engine.add_link("link-accounts", "Billing help link", QueueRef.team("accounts"))
    engine.site.fallback_queue = QueueRef.team("software")
    engine.site.grace_period = 30.0
    # So the personal queue shows time-to-breach and overdue marks too.
    engine.site.personal_overdue_after = 120.0


def start_routing(engine: QueueEngine) -> None:
    """Turn on the routed teams' auto-assignment (once the waiting population exists: its past makes no offers)."""
    for team_id, (mode, capacity) in ROUTED_TEAMS.items():
        engine.set_team_capacity(team_id, capacity)
        engine.set_routing(team_id, mode)


class World:
    """Draws plausible customers and lines of chat from a seeded generator.

    Drawing uses ``rng.random()`` directly rather than ``choice``/``choices``:
    the simulator creates up to 100,000 customers at start-up, and the
    generic helpers were half of that time.
    """

    _PRIORITIES: ClassVar[tuple[Priority, ...]] = tuple(Priority)
    _PRIORITY_CUTS: ClassVar[tuple[float, ...]] = (2 / 17, 12 / 17, 16 / 17)  # weights 2, 10, 4, 1

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def _pick(self, items: list[str]) -> str:
        return items[int(self.rng.random() * len(items))]

    def intake(self) -> Intake:
        rng, pick = self.rng, self._pick
        r = rng.random
        name = f"{pick(FIRST)} {pick(LAST)}"
        company = pick(COMPANIES) if r() < 0.8 else ""
        external = f"TCK-{10000 + int(r() * 90000)}" if r() < 0.35 else ""
        fields: dict[str, str] = {}
        if r() < 0.3:
            fields["contract"] = pick(["Gold", "Silver", "Bronze"])
        if r() < 0.2:
            fields["asset tag"] = f"AT-{1000 + int(r() * 9000)}"
        x = r()
        priority = self._PRIORITIES[sum(1 for cut in self._PRIORITY_CUTS if x >= cut)]
        return Intake(
            customer_name=name,
            company=company,
            company_code=company[:3].upper() if company else "",
            details=pick(DETAILS),
            platform=pick(PLATFORMS),
            locale=pick(LOCALES),
            external_key=external,
            portal="Public Site" if r() < 0.8 else "Partner Portal",
            custom_fields=fields,
            priority=priority,
        )

    def page(self, customer: str) -> BrowserPage:
        url, title, problem = self.rng.choice(PAGES)
        body = f"""<html><head><title>{html.escape(title)}</title></head>
<body style="font-family: sans-serif; margin: 0">
<div style="background:#24364b;color:white;padding:10px 16px;font-size:15px"><b>{html.escape(title)}</b>
<span style="float:right">Signed in as {html.escape(customer)}</span></div>
<div style="padding:16px">
<p style="color:#555">{html.escape(url)}</p>
<h2>{html.escape(title.split("—")[-1].strip())}</h2>
<table cellpadding="6"><tr><td>Name</td><td><input value="{html.escape(customer)}"></td></tr>
<tr><td>Reference</td><td><input value="{self.rng.randint(100000, 999999)}"></td></tr></table>
<p style="background:#fde8e8;color:#9b1c1c;padding:8px;border:1px solid #f5b5b5">{html.escape(problem)}</p>
<p><button>Continue</button> <button>Cancel</button></p>
</div></body></html>"""
        return BrowserPage(url, body)

    def opener(self) -> str:
        return self.rng.choice(OPENERS)

    def reply(self) -> str:
        return self.rng.choice(REPLIES)

    def chatter(self) -> str:
        return self.rng.choice(TEAM_CHATTER)
