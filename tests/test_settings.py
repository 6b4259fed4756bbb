"""Settings: defaults, atomic saves, and surviving a bad file without losing it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import repconsole.settings as settings_module
from repconsole.settings import FILE_NAME, SETTINGS_VERSION, Settings, default_directory

LAYOUT = {
    "columns": [{"key": "customer", "visible": True, "width": 180}, {"key": "owner", "visible": False, "width": 90}],
    "sort": {"key": "priority", "order": "desc"},
}


@pytest.fixture(autouse=True)
def settings_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Whatever the shared conftest does, these tests never reach the real config directory."""
    home = tmp_path_factory.mktemp("settings-home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    return home


def write(directory: Path, content: bytes | str) -> Path:
    path = directory / FILE_NAME
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def aside_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{FILE_NAME}.corrupt-*"))


def test_missing_file_gives_defaults_silently(tmp_path: Path) -> None:
    s, warning = Settings.load(tmp_path)
    assert warning is None
    assert s.table == {} and s.favourites == [] and s.window == {} and s.last_queue is None
    assert s.path == tmp_path / FILE_NAME
    assert not list(tmp_path.iterdir())  # loading writes nothing


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    s, _ = Settings.load(tmp_path / "nested" / "dir")
    s.table = LAYOUT
    s.favourites = ["net", "bill", "net"]
    s.window = {"geometry": "AdnQywADAAA=", "splitter": [220, 760, 320], "details": True}
    s.last_queue = "team:net"
    s.save()
    loaded, warning = Settings.load(tmp_path / "nested" / "dir")
    assert warning is None
    assert loaded.table == LAYOUT
    assert loaded.favourites == ["net", "bill"]
    assert loaded.window == {"geometry": "AdnQywADAAA=", "splitter": [220, 760, 320], "details": True}
    assert loaded.last_queue == "team:net"
    data = json.loads((tmp_path / "nested" / "dir" / FILE_NAME).read_text(encoding="utf-8"))
    assert data["version"] == SETTINGS_VERSION


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    s, _ = Settings.load(tmp_path)
    s.favourites = ["net"]
    s.save()
    s.favourites = ["bill"]
    s.save()
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]


def test_failed_save_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s, _ = Settings.load(tmp_path)
    s.favourites = ["net"]
    s.save()
    before = (tmp_path / FILE_NAME).read_bytes()

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(settings_module.os, "replace", refuse)
    s.favourites = ["bill"]
    with pytest.raises(OSError):
        s.save()
    assert (tmp_path / FILE_NAME).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [FILE_NAME]


def test_accessors_return_copies(tmp_path: Path) -> None:
    s = Settings(tmp_path)
    s.table = LAYOUT
    s.table["columns"].clear()
    s.favourites.append("x")
    s.window["x"] = 1
    assert s.table == LAYOUT and s.favourites == [] and s.window == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("favourites", "net"),
        ("favourites", [1, 2]),
        ("favourites", [""]),
        ("last_queue", "nonsense"),
        ("last_queue", 5),
        ("table", {"columns": "all"}),
        ("table", {"columns": [{"width": 5}]}),
        ("table", {"sort": {"key": "x", "order": "up"}}),
        ("window", {"bad": object()}),
    ],
)
def test_accessors_validate(tmp_path: Path, name: str, value: object) -> None:
    s = Settings(tmp_path)
    with pytest.raises((TypeError, ValueError)):
        setattr(s, name, value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x00\xff\xfe garbage \x80", "not UTF-8"),
        (b"{ this is not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2, 3]", "not an object"),
        (b'"just a string"', "not an object"),
        (b'{"table": {}}', "no version"),
        (b'{"version": "1"}', "no version"),
        (b'{"version": 99, "favourites": ["net"]}', "version 99"),
        (b'{"version": 0}', "version 0"),
    ],
    ids=["garbage", "truncated", "empty", "list", "string", "no-version", "string-version", "newer", "older"],
)
def test_unusable_file_is_kept_aside_with_a_warning(tmp_path: Path, content: bytes, problem: str) -> None:
    path = write(tmp_path, content)
    s, warning = Settings.load(tmp_path)
    assert warning is not None
    assert str(path) in warning and problem in warning
    assert s.table == {} and s.favourites == [] and s.window == {} and s.last_queue is None
    assert not path.exists()
    (aside,) = aside_files(tmp_path)
    assert aside.read_bytes() == content  # nothing lost
    assert str(aside) in warning
    # The next save writes a good file; the bad one stays aside.
    s.favourites = ["net"]
    s.save()
    again, warning = Settings.load(tmp_path)
    assert warning is None and again.favourites == ["net"]
    assert aside.read_bytes() == content


def test_two_bad_files_in_one_second_are_both_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module.time, "strftime", lambda fmt: "20260101-120000")
    write(tmp_path, b"first")
    Settings.load(tmp_path)
    write(tmp_path, b"second")
    Settings.load(tmp_path)
    assert sorted(p.read_bytes() for p in aside_files(tmp_path)) == [b"first", b"second"]


def test_a_bad_part_resets_only_that_part(tmp_path: Path) -> None:
    good = {"version": SETTINGS_VERSION, "table": LAYOUT, "favourites": ["net"], "window": {"splitter": [1, 2, 3]}, "last_queue": "rep:erin"}
    bad = dict(good, table={"columns": [{"key": 7}]})
    path = write(tmp_path, json.dumps(bad))
    s, warning = Settings.load(tmp_path)
    assert warning is not None and str(path) in warning and "table" in warning
    assert s.table == {}
    assert s.favourites == ["net"] and s.window == {"splitter": [1, 2, 3]} and s.last_queue == "rep:erin"
    # The file is still there for the good parts, and a copy is kept aside.
    assert path.exists()
    (aside,) = aside_files(tmp_path)
    assert json.loads(aside.read_text(encoding="utf-8")) == bad


@pytest.mark.parametrize(
    ("part", "value"),
    [("favourites", "net"), ("favourites", [3]), ("window", [1, 2]), ("last_queue", "lobby"), ("last_queue", 12)],
)
def test_each_part_is_validated_separately(tmp_path: Path, part: str, value: object) -> None:
    good = {"version": SETTINGS_VERSION, "table": LAYOUT, "favourites": ["net"], "window": {"a": 1}, "last_queue": "team:net"}
    write(tmp_path, json.dumps(dict(good, **{part: value})))
    s, warning = Settings.load(tmp_path)
    assert warning is not None
    expected = {"table": LAYOUT, "favourites": ["net"], "window": {"a": 1}, "last_queue": "team:net"}
    expected[part] = {"favourites": [], "window": {}, "last_queue": None}[part]
    assert {"table": s.table, "favourites": s.favourites, "window": s.window, "last_queue": s.last_queue} == expected


def test_unknown_keys_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, json.dumps({"version": SETTINGS_VERSION, "favourites": ["net"], "from_the_future": {"x": 1}}))
    s, warning = Settings.load(tmp_path)
    assert warning is None
    assert s.favourites == ["net"]


def test_unreadable_file_gives_defaults_and_a_warning(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).mkdir()  # a directory where the file should be
    s, warning = Settings.load(tmp_path)
    assert warning is not None and FILE_NAME in warning
    assert s.favourites == []


def test_default_directory_is_the_user_config_dir(settings_home: Path) -> None:
    directory = default_directory()
    assert directory.name == "repconsole"
    assert str(directory).startswith(str(settings_home)) or os.name != "posix"
    assert Settings().directory == directory
