"""Officers' sessions survive a console restart (a new `Sessions` on the same file), without the
file giving away a usable cookie or an agency token, and never outliving the officer's
authorisation, the shift or the idle limit; a broken file leaves the console in memory."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from bus.credentials import Credentials
from bus.settings import KafkaSettings, StateSettings
from services.console.app import create_app
from services.console.auth import Officer, Sessions, load_officers, officer_entry
from services.console.demo import demo_password
from services.console.session_file import SavedSession, SessionFile, Stage
from services.console.settings import DEFAULT_AGENCY_CREDENTIALS, DEFAULT_OFFICERS, ConsoleSettings
from services.intake.demo import DEMO_TOKENS

IDLE_S, TTL_S = 600.0, 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Console:
    """One console process's sessions on `path`: `restart()` is a new process on the same file."""

    def __init__(self, path: Path, clock: Clock, officers: dict[str, Officer] | None = None) -> None:
        self.path, self.clock = path, clock
        self.errors: list[Stage] = []
        self.sessions = self._open(officers)

    def _open(self, officers: dict[str, Officer] | None) -> Sessions:
        return Sessions(officers if officers is not None else load_officers(DEFAULT_OFFICERS),
                        Credentials.load(DEFAULT_AGENCY_CREDENTIALS), ttl_s=TTL_S, idle_s=IDLE_S, clock=self.clock,
                        store=SessionFile.open(self.path, self.errors.append))

    def restart(self, officers: dict[str, Officer] | None = None) -> Sessions:
        self.sessions.close()
        self.sessions = self._open(officers)
        return self.sessions


def saved(path: Path) -> list[SavedSession]:
    """What a console starting now would read from the file."""
    store = SessionFile.open(path, lambda stage: None)
    assert store is not None
    try:
        return store.saved()
    finally:
        store.close()


def on_disk(path: Path) -> bytes:
    """The database and its write-ahead log: everything a copied state directory holds."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_a_restarted_console_knows_the_officers_session_with_its_csrf_token(tmp_path: Path) -> None:
    console = Console(tmp_path / "sessions.sqlite", Clock())
    wang = console.sessions.sign_in_officer("cc-wang", demo_password("cc-wang"))
    li = console.sessions.sign_in_officer("cc-li", demo_password("cc-li"))
    console.sessions.sign_out(li.sid)
    again = console.restart().get(wang.sid)
    assert again is not None
    assert (again.sid, again.csrf, again.agency, again.officer, again.via, again.jurisdictions, again.created) == (
        wang.sid, wang.csrf, "police.command_center", "王明 (cc-wang)", "officer", None, wang.created)
    assert console.sessions.csrf_ok(again, wang.csrf)  # the open page's token still works
    assert console.sessions.get(li.sid) is None  # signed out before the restart
    assert console.sessions.get("not-a-session") is None
    assert console.errors == []


def test_the_file_holds_a_hash_of_the_session_id_and_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite"
    console = Console(path, Clock())
    wang = console.sessions.sign_in_officer("cc-wang", demo_password("cc-wang"))
    disk = on_disk(path)
    assert hashlib.sha256(wang.sid.encode()).hexdigest().encode() in disk  # it is there, hashed
    assert wang.sid.encode() not in disk
    for p in path.parent.glob(path.name + "*"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name
    # The digest as a cookie is no session.
    assert console.restart().get(hashlib.sha256(wang.sid.encode()).hexdigest()) is None


def test_a_reporters_token_session_is_not_written_and_does_not_survive(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite"
    console = Console(path, Clock())
    token = DEMO_TOKENS["womens_federation"]
    cadre = console.sessions.sign_in_token(token, "刘芳")
    assert console.sessions.get(cadre.sid) is not None
    console.sessions.sign_in_officer("cc-wang", demo_password("cc-wang"))  # the file is in use
    disk = on_disk(path)
    assert token.encode() not in disk and hashlib.sha256(cadre.sid.encode()).hexdigest().encode() not in disk
    assert "刘芳".encode() not in disk
    assert console.restart().get(cadre.sid) is None


def test_sessions_over_their_shift_or_idle_limit_are_not_restored_and_are_purged(tmp_path: Path) -> None:
    clock = Clock()
    console = Console(tmp_path / "sessions.sqlite", clock)
    idle = console.sessions.sign_in_officer("cc-li", demo_password("cc-li"))
    busy = console.sessions.sign_in_officer("cc-wang", demo_password("cc-wang"))
    for _ in range(7):  # 3,500 s, a request every 500 s: busy, and within the 3,600 s shift
        clock.now += 500
        assert console.sessions.get(busy.sid) is not None
    sessions = console.restart()
    assert sessions.get(idle.sid) is None  # idle for 3,500 s > 600 s
    assert [s.digest for s in saved(console.path)] == [
        hashlib.sha256(busy.sid.encode()).hexdigest()]  # the idle one is gone from the file
    assert sessions.get(busy.sid) is not None
    clock.now += 200  # 3,700 s since sign-in: the shift is over, however busy
    assert sessions.get(busy.sid) is None
    assert console.restart().get(busy.sid) is None


def test_the_idle_limit_holds_across_a_restart_within_the_minute_last_seen_is_written(tmp_path: Path) -> None:
    clock = Clock()
    console = Console(tmp_path / "sessions.sqlite", clock)
    wang = console.sessions.sign_in_officer("cc-wang", demo_password("cc-wang"))
    clock.now += 500
    console.sessions.get(wang.sid)  # written: more than a minute since the last write
    clock.now += 500  # 1,000 s since sign-in, 500 s since the last request
    assert console.restart().get(wang.sid) is not None
    clock.now += 30
    console.sessions.get(wang.sid)  # not written: 30 s since the restart's first request wrote it
    clock.now += 10
    console.sessions.get(wang.sid)  # not written either
    clock.now += IDLE_S - 30  # 570 s idle in memory; on disk, last seen 610 s ago
    assert console.sessions.get(wang.sid, touch=False) is not None
    # After a restart it ends up to a minute early, never late.
    assert console.restart().get(wang.sid) is None


def test_a_session_ends_with_its_officers_authorisation(tmp_path: Path) -> None:
    console = Console(tmp_path / "sessions.sqlite", Clock())
    officers = load_officers(DEFAULT_OFFICERS)
    signed_in = {o: console.sessions.sign_in_officer(o, demo_password(o))
                 for o in ("cc-wang", "cc-li", "ato-zhao", "edu-chen", "civ-sun")}
    changed = dict(officers)
    del changed["cc-wang"]  # left the command centre's roster
    changed["cc-li"] = officers["cc-li"].model_copy(update={"agency": "police"})
    changed["ato-zhao"] = officers["ato-zhao"].model_copy(update={"jurisdictions": ("xian",)})
    changed["edu-chen"] = officer_entry("edu-chen", "陈静", "education", "a-new-password")  # password reset
    changed["civ-sun"] = officers["civ-sun"].model_copy(update={"name": "孙丽华"})  # a new name only
    sessions = console.restart(changed)
    for officer in ("cc-wang", "cc-li", "ato-zhao", "edu-chen"):
        assert sessions.get(signed_in[officer].sid) is None, officer
    sun = sessions.get(signed_in["civ-sun"].sid)
    assert sun is not None and (sun.officer, sun.display) == ("孙丽华 (civ-sun)", "孙丽华")
    # Dropped from the file too: restored with the old roster, they stay signed out.
    assert len(saved(console.path)) == 1
    sessions = console.restart(officers)
    assert [o for o, s in signed_in.items() if sessions.get(s.sid) is not None] == ["civ-sun"]


def test_sign_out_removes_the_session_from_the_file(tmp_path: Path) -> None:
    console = Console(tmp_path / "sessions.sqlite", Clock())
    wang = console.sessions.sign_in_officer("cc-wang", demo_password("cc-wang"))
    assert len(saved(console.path)) == 1
    console.sessions.sign_out(wang.sid)
    assert saved(console.path) == []
    assert console.restart().get(wang.sid) is None


def test_a_corrupt_file_leaves_sessions_in_memory_and_is_counted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = state / "console" / "sessions.sqlite"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database, " * 512)
    registry = CollectorRegistry()
    app = create_app(ConsoleSettings(), KafkaSettings(KAFKA_BOOTSTRAP_SERVERS=""),
                     StateSettings(state_dir=state), registry=registry, read_bus=False)
    with TestClient(app) as client:
        r = client.post("/api/sign-in", json={"officer": "cc-wang", "password": demo_password("cc-wang")})
        assert r.status_code == 200, r.text
        assert client.get("/api/me").status_code == 200
    assert registry.get_sample_value("referral_bus_console_session_file_errors_total", {"stage": "open"}) == 1
    assert path.read_bytes() == b"not a database, " * 512  # left for the operator to look at


def test_a_file_that_fails_in_use_leaves_sessions_in_memory(tmp_path: Path) -> None:
    clock = Clock()
    console = Console(tmp_path / "sessions.sqlite", clock)
    wang = console.sessions.sign_in_officer("cc-wang", demo_password("cc-wang"))
    for p in tmp_path.glob("sessions.sqlite*"):
        p.write_bytes(b"\xff" * p.stat().st_size)  # damaged under the running console
    clock.now += 120
    assert console.sessions.get(wang.sid) is not None  # its last_seen write fails
    li = console.sessions.sign_in_officer("cc-li", demo_password("cc-li"))
    assert console.sessions.get(li.sid) is not None
    assert console.errors == ["use"]
    assert console.restart().get(wang.sid) is None and console.errors == ["use", "open"]
