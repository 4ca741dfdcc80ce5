"""Signed MQTT commands: every forgery is refused with a reason and counted (issue 13.1)."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.errors import CommandError
from firmware.link.bundle import key_id
from firmware.link.cmdauth import CommandAuth, NonceBook, sign_command
from firmware.link.commands import CommandDispatcher

KEY = Ed25519PrivateKey.generate()
KID = key_id(KEY.public_key())
ME = {"site": "s1", "device": "dev1"}
NOW = 1_764_490_000.0


def auth(tmp_path=None, now: float = NOW) -> CommandAuth:
    path = tmp_path / "nonces.json" if tmp_path else None
    return CommandAuth([KEY.public_key()], site="s1", device_id="dev1", room="r1",
                       nonces=NonceBook(path, 300), window_s=300, wall=lambda: now)


def cmd(name="session_start", target=ME, key=KEY, args=None, **kw) -> bytes:
    kw.setdefault("issued_at", NOW)
    return sign_command(name, target, key, args if args is not None else {"session_id": "s9"}, **kw)


FORGERIES = {
    "unsigned": (b'{"session_id": "s9", "by": "mallory"}', "no ed25519 signature"),
    "empty": (b"", "no ed25519 signature"),
    "other key": (cmd(key=Ed25519PrivateKey.generate()), "does not verify"),
    "tampered": (cmd().replace(b'"s9"', b'"s8"'), "does not verify"),
    "other command": (cmd(name="session_stop"), "signed for 'session_stop'"),
    "other device": (cmd(target={"site": "s1", "device": "dev2"}), "not this device"),
    "other room": (cmd(target={"site": "s1", "room": "r2"}), "not this device"),
    "other site": (cmd(target={"site": "s2", "device": "dev1"}), "not site"),
    "both targets": (cmd(target={"site": "s1", "device": "dev1", "room": "r2"}), "not this device"),
    "expired": (cmd(issued_at=NOW - 301), "expired"),
    "future": (cmd(issued_at=NOW + 301), "expired"),
    "bad nonce": (cmd(nonce="short"), "nonce"),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_commands_are_refused_with_a_reason(name):
    raw, reason = FORGERIES[name]
    checker = auth()
    with pytest.raises(CommandError, match=reason):
        checker.check("session_start", raw)
    assert checker.refused == 1


def test_room_target_and_actor_from_the_key_not_the_payload():
    payload, actor = auth().check("session_start", cmd(target={"site": "s1", "room": "r1"},
                                                       args={"session_id": "s9", "by": "mallory"}))
    assert actor == f"central:{KID}" and payload == {"session_id": "s9", "by": "mallory"}
    calls = []
    dispatcher = CommandDispatcher("dev1", {}, lambda n, p: calls.append(p) or {}, auth=auth())
    dispatcher.handle("session_start", cmd(args={"session_id": "s9", "by": "mallory"}))
    assert calls == [{"session_id": "s9", "by": f"central:{KID}"}]


def test_replay_is_refused_also_after_a_restart(tmp_path):
    raw = cmd(nonce="n" * 20)
    assert auth(tmp_path).check("session_start", raw)[0]["session_id"] == "s9"
    with pytest.raises(CommandError, match="replayed"):
        auth(tmp_path).check("session_start", raw)  # a new process reads the nonce file
    assert (tmp_path / "nonces.json").stat().st_mode & 0o777 == 0o600
    later = auth(tmp_path, now=NOW + 1000)  # outside the window: expired, and the nonce pruned
    with pytest.raises(CommandError, match="expired"):
        later.check("session_start", raw)
    later.check("session_start", cmd(issued_at=NOW + 1000))
    assert "n" * 20 not in json.loads((tmp_path / "nonces.json").read_text())


def test_dispatcher_answers_forgeries_without_running_them():
    calls = []
    dispatcher = CommandDispatcher("dev1", {"telemetry_now": lambda p: calls.append(p) or {}},
                                   lambda n, p: calls.append(p) or {}, auth=auth())
    forgeries = [raw for label, (raw, _) in FORGERIES.items() if label != "other command"]
    for raw in forgeries:
        for name in ("session_start", "session_stop", "telemetry_now"):
            result_name, result = dispatcher.handle(name, raw)
            assert result_name == name and result["ok"] is False and "refused" in result["error"]
    assert calls == [] and dispatcher.auth.refused == 3 * len(forgeries)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(at=st.integers(min_value=0, max_value=400), byte=st.integers(min_value=0, max_value=255))
def test_any_changed_byte_is_refused_or_harmless(at, byte):
    raw = cmd(nonce="z" * 20)
    changed = bytearray(raw)
    changed[at % len(raw)] = byte
    try:
        payload, _ = auth().check("session_start", bytes(changed))
    except CommandError:
        return
    # only a change inside the signature's own JSON whitespace/base64 padding can pass
    assert payload == {"session_id": "s9"}


def test_real_clock_default_accepts_a_fresh_command():
    checker = CommandAuth([KEY.public_key()], site="s1", device_id="dev1", room="r1",
                          nonces=NonceBook(None, 300))
    assert checker.check("rebirth", sign_command("rebirth", ME, KEY, issued_at=time.time()))[0] == {}
