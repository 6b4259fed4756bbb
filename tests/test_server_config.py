"""Site configuration: the example is valid, and every mistake names file, line and key."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from server_helpers import site_toml

from repconsole.backend import world
from repconsole.core.model import QueueRef, RuleAction, SiteConfig
from repconsole.server.config import ConfigError, ServerSettings, TomlLines, build_engine, demo_site, load_config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "site.example.toml"


def test_the_documented_example_is_a_valid_site() -> None:
    spec = load_config(EXAMPLE)
    engine = build_engine(spec, time.time)
    assert set(engine.teams) == {"frontline", "network", "billing"}
    assert engine.teams["network"].rule is not None and engine.teams["network"].rule.overflow_team == "frontline"
    assert engine.teams["billing"].rule.action is RuleAction.MARK_OVERDUE
    assert engine.reps["alex"].max_sessions == 6 and engine.reps["priya"].max_sessions == 4  # her team's
    assert engine.teams["network"].routing == "skills" and engine.teams["network"].skills == {"Network": "vpn"}
    assert engine.reps["priya"].skills == {"vpn"} and engine.reps["lucia"].max_sessions == 4
    assert (engine.site.offer_timeout, engine.site.misses_before_away) == (20, 2)
    assert not any(rep.connected for rep in engine.reps.values())
    assert engine.buttons["btn-spring"].expires_at == dt.datetime(2030, 6, 30, 23, 59, 59, tzinfo=dt.UTC).timestamp()
    assert engine.site.fallback_queue == QueueRef.team("frontline")
    assert engine.site.personal_overdue_after == 300
    assert spec.server.allowed_origins == ("https://support.example.com",)
    assert spec.server.customer_grace == 120 and spec.server.token_lifetime == 43200


def test_the_demo_site_is_the_simulators_with_alex_for_me() -> None:
    spec = demo_site()
    assert spec.demo
    ids = [r.id for r in spec.reps]
    assert ids[0] == "alex" and world.ME not in ids
    assert set(ids[1:]) == {p[0] for p in world.PEERS}
    assert {t.id for t in spec.teams} == {t[0] for t in world.TEAMS}
    assert {i.code for i in spec.issues} == {i[0] for i in world.ISSUES}
    assert {b.id for b in spec.buttons} >= {"btn-alex", "btn-priya"}
    assert all(b.target != QueueRef.personal(world.ME) for b in spec.buttons)
    build_engine(spec, time.time)


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    prefix = f"{path}:"
    lines = str(info.value).splitlines()
    assert all(line.startswith(prefix) for line in lines), lines
    return ["site.toml:" + line[len(prefix):] for line in lines]


def _line(text: str, needle: str, occurrence: int = 1) -> int:
    n = 0
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            n += 1
            if n == occurrence:
                return number
    raise AssertionError(needle)


@pytest.mark.parametrize(
    ("change", "needle", "occurrence", "message"),
    [
        # A rule as a sub-table: the line of the key itself.
        (('name = "Hardware"', 'name = "Hardware"\n[teams.hw.rule]\nafter = 60\naction = "transfer"\noverflow_team = "netwrk"'),
         'overflow_team = "netwrk"', 1, "teams.hw.rule.overflow_team: unknown team 'netwrk'"),
        # A rule as an inline table: the line of the table.
        (('name = "Hardware"', 'name = "Hardware"\nrule = { after = 60, action = "escalate" }'),
         "rule = {", 1, "teams.hw.rule.action: unknown action 'escalate' (expected mark_overdue or transfer)"),
        # The second [[reps]]: its teams line.
        (('teams = ["net"]\npassword_hash', 'teams = ["net", "sales"]\npassword_hash'),
         'teams = ["net", "sales"]', 1, "reps[0].teams[1]: unknown team 'sales'"),
        (('id = "carol"', 'id = "bob"'), 'id = "bob"', 2, "reps[2].id: duplicate rep id 'bob'"),
        (("grace_period = 60.0", "grace_period = 60.0\ngrace_periode = 5"), "grace_periode", 1,
         "site.grace_periode: unknown key (expected one of: grace_period, fallback_queue, max_sessions_default, key_length, "
         "key_failures_per_minute, personal_overdue_after, offer_timeout, misses_before_away)"),
        (('target = "rep:alice"', 'target = "rep:alicia"'), 'target = "rep:alicia"', 1, "buttons[0].target: unknown rep 'alicia'"),
        (('target = "team:net"', 'target = "team:net"\nexpires_at = 2030-01-01T00:00:00'), "expires_at", 1,
         "buttons[1].expires_at: needs a time zone (Z or +hh:mm): the server's clock is UTC"),
        (('fallback_queue = "team:vault"', 'fallback_queue = "vault"'), "fallback_queue", 1,
         "site.fallback_queue: not a queue reference: 'vault' (expected 'rep:ID' or 'team:ID')"),
        (("customer_grace = 0", 'customer_grace = 0\nallowed_origins = ["null"]'), "allowed_origins", 1,
         "server.allowed_origins[0]: 'null' is never allowed: it is the origin of sandboxed frames and local files"),
        (('category = "Billing"', 'category = "Billing"\n"quoted.key" = 1'), '"quoted.key"', 1,
         'issues[1]."quoted.key": unknown key (expected one of: code, name, category, team)'),
    ],
)
def test_a_mistake_names_the_file_the_line_and_the_key(
    tmp_path: Path, change: tuple[str, str], needle: str, occurrence: int, message: str
) -> None:
    text = site_toml()
    assert change[0] in text, change[0]
    text = text.replace(change[0], change[1], 1)
    errors = _errors(tmp_path, text)
    assert f"site.toml:{_line(text, needle, occurrence)}: {message}" in errors, errors


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    text = site_toml().replace('teams = ["net"]', 'teams = ["nett"]').replace('team = "hw"', 'team = "hardware"')
    errors = _errors(tmp_path, text)
    assert len(errors) == 3, errors  # alice's and bob's teams, the printer issue's team


def test_a_syntax_error_names_its_line(tmp_path: Path) -> None:
    broken = 'name = "Billing'
    text = site_toml().replace(broken + '"', broken, 1)
    (error,) = _errors(tmp_path, text)
    assert error.startswith(f"site.toml:{_line(text, broken)}: TOML syntax error: ")


def test_a_malformed_password_hash_says_how_to_make_one(tmp_path: Path) -> None:
    text = site_toml().replace('password_hash = "$argon2id$', 'password_hash = "$bcrypt$', 1)
    (error,) = _errors(tmp_path, text)
    assert error.startswith(f"site.toml:{_line(text, '$bcrypt$')}: reps[0].password_hash: not a password hash")
    assert "repconsole-server passwd USERNAME" in error


def test_missing_and_mistyped_values(tmp_path: Path) -> None:
    text = '[teams.a]\nname = "A"\n[teams.a.rule]\nafter = -1\naction = "transfer"\n\n[[reps]]\nid = "x y"\n'
    errors = _errors(tmp_path, text)
    assert "site.toml:4: teams.a.rule.after: must be a number of seconds, 0 or more" in errors
    assert "site.toml:3: teams.a.rule.overflow_team: is required when action is 'transfer'" in errors
    assert any(e.startswith("site.toml:8: reps[0].id: 'x y' is not a valid rep id") for e in errors)
    assert "site.toml:7: reps[0].name: is required" not in errors  # a bad id is reported once
    assert _errors(tmp_path, "[site]\n")[0] == "site.toml: reps: is required"


def test_line_finding_understands_toml() -> None:
    text = """\
# comment = not a key
[a]
x = 1
"dotted.key" = '''
multi-line = not a key
'''
y.z = [
  1,  # tricky ] in a comment
  "]",
]
w = 2

[[arr]]
k = 1
[[arr]]
k = 2
[arr.sub]
m = 3
[[arr]]
inline = { p = 1, q = { r = 2 } }
"""
    lines = TomlLines(text)
    assert lines.line_of(("a", "x")) == 3
    assert lines.line_of(("a", "dotted.key")) == 4
    assert lines.line_of(("a", "y", "z")) == 7
    assert lines.line_of(("a", "y", "z", 1)) == 7
    assert lines.line_of(("a", "w")) == 11
    assert lines.line_of(("arr", 0, "k")) == 14
    assert lines.line_of(("arr", 1, "k")) == 16
    assert lines.line_of(("arr", 1, "sub", "m")) == 18
    assert lines.line_of(("arr", 2, "inline", "q", "r")) == 20
    assert lines.line_of(("arr", 2)) == 19
    assert lines.line_of(("nope",)) is None


# ------------------------------------------------- the declared shape (msgspec)


@pytest.mark.parametrize(
    ("change", "needle", "message"),
    [
        # An unknown key is refused at its own line, with the keys there are.
        (("max_sessions = 3", 'max_sessions = 3\ncolour = "red"'), "colour",
         "reps[4].colour: unknown key (expected one of: id, name, teams, max_sessions, password_hash, skills)"),
        (("[teams.net]", "[sever]\nport = 1\n\n[teams.net]"), "[sever]",
         "sever: unknown key (expected one of: site, server, admin, cluster, teams, reps, issues, buttons, links)"),
        # A wrong type says what was expected.
        (('name = "Hardware"', 'name = "Hardware"\npersistent = "yes"'), "persistent", "teams.hw.persistent: must be true or false, not a string"),
        (('teams = ["net"]', 'teams = "net"'), 'teams = "net"', "reps[0].teams: must be an array, not a string"),
        (('name = "Hardware"', 'name = "Hardware"\nrule = 5'), "rule = 5", "teams.hw.rule: must be a table, not a whole number"),
        (("customer_grace = 0", 'customer_grace = "2m"'), "customer_grace", "server.customer_grace: must be a number of seconds, 0 or more"),
        (("max_sessions = 3", "max_sessions = 2.5"), "max_sessions", "reps[4].max_sessions: must be a whole number between 1 and 1000"),
        (('target = "team:net"', 'target = "team:net"\nexpires_at = 2030-01-01'), "expires_at",
         "buttons[1].expires_at: must be a date and time such as 2030-06-30T23:59:59Z, not a date"),
        # A range, a pattern.
        (("customer_grace = 0", "customer_grace = 0\ntoken_lifetime = 30"), "token_lifetime", "server.token_lifetime: must be at least 60 seconds"),
        (("grace_period = 60.0", "grace_period = 60.0\nkey_length = 4"), "key_length", "site.key_length: must be a whole number between 5 and 32"),
        (("grace_period = 60.0", "grace_period = inf"), "grace_period", "site.grace_period: must be a number of seconds, 0 or more"),
        (("customer_starts_per_minute = 0", "customer_starts_per_minute = -1"), "customer_starts_per_minute",
         "server.customer_starts_per_minute: must be a whole number, 0 (no limit) or more"),
        (('name = "Hardware"', 'name = " "'), 'name = " "', "teams.hw.name: must be a non-empty string"),
        (("[teams.hw]", '[teams."h w"]'), '[teams."h w"]',
         "teams.\"h w\": 'h w' is not a valid team id (1 to 64 letters, digits or _ . @ -, starting with a letter or digit)"),
        (('id = "btn-net"', 'id = "btn-net\\n"'), "btn-net", "buttons[1].id: 'btn-net\\n' is not a valid button id"),
    ],
)
def test_the_declared_shape_names_the_key_the_line_and_what_was_expected(
    tmp_path: Path, change: tuple[str, str], needle: str, message: str
) -> None:
    text = site_toml()
    assert change[0] in text, change[0]
    text = text.replace(change[0], change[1], 1)
    errors = _errors(tmp_path, text)
    expected = f"site.toml:{_line(text, needle)}: {message}"
    assert any(e.startswith(expected) for e in errors), errors


def test_every_mistake_in_one_table_is_reported_not_just_the_first(tmp_path: Path) -> None:
    text = site_toml().replace('max_sessions = 3', 'max_sessions = "3"\nnick = "E"\nteams = 5', 1).replace('teams = ["net", "bill"]\n', "", 1)
    errors = _errors(tmp_path, text)
    assert [e.split(": ", 1)[1] for e in errors] == [
        "reps[4].max_sessions: must be a whole number between 1 and 1000",
        "reps[4].nick: unknown key (expected one of: id, name, teams, max_sessions, password_hash, skills)",
        "reps[4].teams: must be an array, not a whole number",
    ]


def test_an_item_that_cannot_be_read_keeps_its_number(tmp_path: Path) -> None:
    # bob's table cannot be read at all; carol, after him, is still reps[2].
    text = site_toml().replace('name = "Bob Ortiz"', "name = 5").replace('teams = ["bill"]', 'teams = ["sales"]')
    errors = _errors(tmp_path, text)
    assert errors == [
        f"site.toml:{_line(text, 'name = 5')}: reps[1].name: must be a non-empty string",
        f"site.toml:{_line(text, 'sales')}: reps[2].teams[0]: unknown team 'sales'",
    ]


def test_a_key_is_reported_once_with_its_first_problem(tmp_path: Path) -> None:
    rule = 'name = "Hardware"\nrule = { after = 60, action = "transfer", overflow_team = 5 }'
    text = site_toml().replace('name = "Hardware"', rule)
    # Not also "is required when action is 'transfer'": the overflow team is there, only wrong.
    assert _errors(tmp_path, text) == [f"site.toml:{_line(text, 'rule =')}: teams.hw.rule.overflow_team: must be a string, not a whole number"]


def test_problems_come_in_the_files_order(tmp_path: Path) -> None:
    # A wrong type near the end, unknown references (checked after conversion) before it.
    text = site_toml().replace('name = "Billing help link"', "name = 5").replace('"team:vault"', '"team:vaults"')
    text = text.replace('teams = ["hw"]', 'teams = ["hardware"]')
    lines = [int(e.split(":")[1]) for e in _errors(tmp_path, text)]
    assert len(lines) == 3 and lines == sorted(lines)


def test_what_the_file_leaves_out_is_the_engines_and_the_servers_default(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[[reps]]\nid = "a"\nname = "A"\n', encoding="utf-8")
    spec = load_config(path)
    assert spec.site == SiteConfig()
    assert spec.server == ServerSettings()
    assert spec.reps[0].teams == () and spec.reps[0].max_sessions is None
