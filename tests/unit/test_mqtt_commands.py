"""Remote commands: one result per message, errors with reasons, never an exception."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.errors import CommandError, SessionError
from firmware.link.bundle import key_id
from firmware.link.cmdauth import CommandAuth, NonceBook, sign_command
from firmware.link.commands import MAX_COMMAND_BYTES, CommandDispatcher

KEY = Ed25519PrivateKey.generate()
TARGET = {"site": "s1", "device": "dev1"}


def auth() -> CommandAuth:
    return CommandAuth([KEY.public_key()], site="s1", device_id="dev1", room="r1",
                       nonces=NonceBook(None, 300))


def signed(name: str, raw: bytes) -> bytes:
    """The JSON object ``raw`` as a signed command for dev1 (empty = no arguments)."""
    return sign_command(name, TARGET, KEY, json.loads(raw) if raw.strip() else {})


def make(delegate=None) -> tuple[CommandDispatcher, list]:
    calls: list = []

    def default(name: str, payload: dict) -> dict:
        calls.append((name, payload))
        if payload.get("session_id") == "closed":
            raise SessionError("session closed is completed; cannot start it")
        if payload.get("session_id") == "boom":
            raise RuntimeError("bug")
        return {"session_id": payload.get("session_id"), "state": "in_progress"}

    local = {"rebirth": lambda p: {"status": "published"}}
    return CommandDispatcher("dev1", local, delegate or default, auth=auth()), calls


def test_delegated_command_gets_payload_without_request_id():
    dispatcher, calls = make()
    name, result = dispatcher.handle("session_start", signed("session_start", b'{"request_id": "r1", "session_id": "s1"}'))
    assert name == "session_start" and result["ok"] is True and result["request_id"] == "r1"
    assert result["result"] == {"session_id": "s1", "state": "in_progress"}
    assert calls == [("session_start", {"session_id": "s1", "by": f"central:{key_id(KEY.public_key())}"})]


def test_local_command_and_empty_payload():
    dispatcher, calls = make()
    assert dispatcher.handle("rebirth", signed("rebirth", b""))[1]["result"] == {"status": "published"}
    assert calls == []


def test_unknown_command_lists_known_ones():
    dispatcher, calls = make()
    _, result = dispatcher.handle("self_destruct", signed("self_destruct", b"{}"))
    assert result["ok"] is False and "unknown command" in result["error"] and "session_start" in result["error"]
    assert calls == []


def test_invalid_name_retained_oversized_and_malformed():
    dispatcher, calls = make()
    assert dispatcher.handle("Bad Name", b"{}")[0] == "_invalid"
    assert "retained" in dispatcher.handle("session_start", b"{}", retained=True)[1]["error"]
    big = json.dumps({"x": "a" * MAX_COMMAND_BYTES}).encode()
    assert "byte limit" in dispatcher.handle("session_start", big)[1]["error"]
    assert "signature" in dispatcher.handle("session_start", b"{nope")[1]["error"]
    assert "signature" in dispatcher.handle("session_start", b"[1]")[1]["error"]
    assert "request_id" in dispatcher.handle("session_start", signed("session_start", b'{"request_id": 5}'))[1]["error"]
    assert calls == []


def test_handler_errors_become_results():
    dispatcher, _ = make()
    _, refused = dispatcher.handle("session_start", signed("session_start", b'{"session_id": "closed"}'))
    assert refused["ok"] is False and "completed" in refused["error"]
    _, crashed = dispatcher.handle("session_start", signed("session_start", b'{"session_id": "boom"}'))
    assert crashed["ok"] is False and "internal error" in crashed["error"] and "bug" not in crashed["error"]


def test_without_delegate_session_commands_are_unknown():
    dispatcher = CommandDispatcher("dev1", {}, None, auth=auth())
    _, result = dispatcher.handle("session_start", signed("session_start", b"{}"))
    assert result["ok"] is False and "unknown command" in result["error"]


def test_delegate_returning_non_dict_is_an_error():
    dispatcher, _ = make(delegate=lambda name, payload: None)
    assert dispatcher.handle("session_stop", signed("session_stop", b"{}"))[1]["ok"] is False


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=40), raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode),
       retained=st.booleans())
def test_any_message_gets_exactly_one_well_formed_result(name, raw, retained):
    dispatcher, _ = make()
    result_name, result = dispatcher.handle(name, raw, retained)
    assert result["command"] == result_name and result["device_id"] == "dev1"
    assert isinstance(result["ok"], bool)
    assert ("error" in result) != result["ok"]
    json.dumps(result)  # always serialisable
    if retained:
        assert result["ok"] is False


def test_command_error_is_a_value_error():
    assert issubclass(CommandError, ValueError)
