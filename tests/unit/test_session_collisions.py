"""Sessions that cannot collide: the session keeper (console/button/MQTT commands and
the schedule) over a real Store, and the MQTT command dispatcher's error result."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.config import Config
from firmware.domain.decisions import DecisionEngine
from firmware.errors import SessionError
from firmware.link.cmdauth import CommandAuth, NonceBook, sign_command
from firmware.link.commands import CommandDispatcher
from firmware.runtime.sessions import SessionKeeper
from firmware.store import Store
from firmware.store.tinyfile import TABLE

T0 = 1_790_000_000.0


def _keeper(store: Store, now: list[float]) -> SessionKeeper:
    config = Config.model_validate({"device": {"room": "lab"}})
    return SessionKeeper(config, store, DecisionEngine(), wall=lambda: now[0], clock=lambda: now[0])


def _roster(store: Store) -> dict:
    store.people.add("p1", "Pupil 1")
    return store.rosters.create("R", [{"person_id": "p1", "seat": "1"}])


def test_start_command_refused_while_another_session_runs(tmp_path):
    now = [T0]
    with Store(tmp_path / "d", clock=lambda: now[0]) as store:
        roster = _roster(store)
        first = store.sessions.create(roster["id"], "lab", "First", T0, T0 + 3600)
        second = store.sessions.create(roster["id"], "lab", "Second", T0 + 3600, T0 + 7200)
        keeper = _keeper(store, now)
        keeper.command("start", first["id"], "console")
        with pytest.raises(SessionError, match="already running"):
            keeper.command("start", second["id"], "console")
        key = Ed25519PrivateKey.generate()
        auth = CommandAuth([key.public_key()], site="s1", device_id="dev-1", room="lab",
                           nonces=NonceBook(None, 300), window_s=300, wall=lambda: now[0])
        dispatcher = CommandDispatcher("dev-1", {}, lambda name, payload: keeper.command(
            "start", payload["session_id"], "mqtt"), auth=auth)
        signed = sign_command("session_start", {"site": "s1", "device": "dev-1"}, key,
                              {"session_id": second["id"]}, issued_at=now[0])
        name, result = dispatcher.handle("session_start", signed)
        assert name == "session_start" and result["ok"] is False and "already running" in result["error"]
        assert store.sessions.get(second["id"])["state"] == "scheduled"
        assert keeper.session["id"] == first["id"]


def test_schedule_starts_one_of_two_legacy_overlapping_sessions_and_says_why_once(tmp_path, caplog):
    data = tmp_path / "d"
    with Store(data, clock=lambda: T0) as store:
        roster = _roster(store)
        store.sessions.create(roster["id"], "lab", "Maths", T0, T0 + 3600)
        store.sessions.create(roster["id"], "lab2", "Physics", T0 + 60, T0 + 3600)
    doc = json.loads((data / "sessions" / "sessions.json").read_text())
    for rec in doc[TABLE].values():
        rec["room"] = "lab"  # as written by firmware that accepted overlapping sessions
    (data / "sessions" / "sessions.json").write_text(json.dumps(doc))

    now = [T0 + 120]
    with Store(data, clock=lambda: now[0]) as store:
        keeper = _keeper(store, now)
        with caplog.at_level(logging.ERROR, "firmware.runtime.sessions"):
            started = keeper.schedule()
            again = keeper.schedule()
        assert [store.sessions.get(sid)["name"] for sid, _ in started] == ["Maths"] and again == []
        refusals = [r for r in caplog.records if "not in_progress by schedule" in r.getMessage()]
        assert len(refusals) == 1 and "already running" in refusals[0].getMessage()
        assert [s["state"] for s in store.sessions.list()] == ["in_progress", "scheduled"]
        now[0] = T0 + 3600  # Maths ends; Physics' window is over too: nothing more starts
        assert keeper.schedule() == [(started[0][0], "completed")]
