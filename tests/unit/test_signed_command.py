"""Signed central commands (erasure): only the centre's key, only for this site and device,
only recent; anything else is refused with a reason."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.errors import CommandError
from firmware.link.mqtt import erasure_args
from firmware.link.payloads import utc_iso
from firmware.link.signed import sign_command, verify_command
from tests.unit.test_store_support import T0

KEY = Ed25519PrivateKey.generate()


def command(**changes) -> dict:
    body = {"command": "erasure", "site": "s1", "target": "door-1", "issued_at": utc_iso(T0 - 60),
            "request_id": "er-1", "person_id": "ann", "full": False, "by": "dpo"}
    body.update(changes)
    return sign_command(body, KEY)


def verify(payload, key=KEY.public_key(), **kwargs):
    args = {"name": "erasure", "site": "s1", "device_id": "door-1", "now": T0, "max_age_s": 86400}
    args.update(kwargs)
    return verify_command(payload, key, **args)


def test_a_signed_command_for_this_device_or_the_whole_site_verifies():
    assert verify(command())["person_id"] == "ann"
    assert verify(command(target="_all"))["request_id"] == "er-1"
    assert erasure_args(verify(command())) == {"person_id": "ann", "request_id": "er-1",
                                               "full": False, "by": "dpo"}


@pytest.mark.parametrize("forge, reason", [
    (lambda c: {**c, "person_id": "bob"}, "does not verify"),
    (lambda c: {**c, "full": True}, "does not verify"),
    (lambda c: {k: v for k, v in c.items() if k != "signature"}, "not signed"),
    (lambda c: {**c, "signature": {"alg": "ed25519", "value": "***"}}, "malformed"),
    (lambda c: {**c, "signature": {"alg": "rsa", "value": "AAAA"}}, "not signed"),
    (lambda c: command(target="door-2"), "this device is s1/door-1"),
    (lambda c: command(site="s2"), "this device is s1/door-1"),
    (lambda c: command(command="session_stop"), "for command 'session_stop'"),
    (lambda c: command(issued_at=utc_iso(T0 - 2 * 86400)), "older than"),
    (lambda c: command(issued_at=utc_iso(T0 + 3600)), "in the future"),
    (lambda c: command(issued_at="yesterday"), "not an ISO time"),
    (lambda c: command(nonce="short"), "nonce"),
    (lambda c: sign_command({k: v for k, v in c.items() if k not in ("signature", "site")}, KEY),
     "signed fields missing: site"),
    (lambda c: sign_command({k: v for k, v in c.items() if k != "signature"},
                            Ed25519PrivateKey.generate()), "does not verify"),
    (lambda c: ["not", "an", "object"], "JSON object"),
])
def test_forged_or_misdirected_commands_are_refused(forge, reason):
    with pytest.raises(CommandError, match=reason):
        verify(forge(command()))


def test_no_key_refuses_and_an_unsynced_clock_skips_only_the_age_check():
    with pytest.raises(CommandError, match="no central public key"):
        verify(command(), key=None)
    old = command(issued_at=utc_iso(T0 - 30 * 86400))
    assert verify(old, clock_synced=False)["person_id"] == "ann"


@pytest.mark.parametrize("payload, reason", [
    ({"request_id": "r"}, "person_id"), ({"person_id": "a"}, "request_id"),
    ({"person_id": "a", "request_id": "r", "full": "yes"}, "full"),
    ({"person_id": "a", "request_id": "r", "by": ""}, "by"),
])
def test_erasure_fields_are_checked(payload, reason):
    with pytest.raises(CommandError, match=reason):
        erasure_args(payload)
