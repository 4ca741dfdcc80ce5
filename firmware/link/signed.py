"""Signed central commands (Ed25519), verified on the device. Pure, no I/O.

A signed command payload is a JSON object signed by the centre with the same key as roster
bundles (``rollcall central keygen``; the device holds the public half in
``mqtt.roster_public_key_file``)::

    {"command": "erasure", "site": "s1", "target": "door-1" | "_all",
     "issued_at": "2026-11-30T09:00:00.000Z", "nonce": "<16-64 chars>",
     "request_id": "...", ...command fields...,
     "signature": {"alg": "ed25519", "key_id": "<16 hex>", "value": "<base64>"}}

The signature covers :func:`firmware.link.bundle.canonical_bytes` of everything except
``signature`` -- so the command name, its target (site + device or ``_all``), the time
and the nonce are all signed: a command cannot be redirected to another device or site,
renamed, or edited. ``issued_at`` must be within ``max_age_s`` in the past (and at most
``FUTURE_SKEW_S`` ahead) when the device clock is synchronised; replays are harmless for
idempotent commands (erasure de-duplicates by ``request_id`` durably in the store).

Written to be folded into a general signed-command layer: :func:`verify_command` takes
the command name and returns the verified payload, raising ``CommandError`` otherwise.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware.errors import BundleError, CommandError
from firmware.link.bundle import canonical_bytes, key_id

ALL_DEVICES = "_all"
FUTURE_SKEW_S = 300.0
SIGNED_KEYS = ("command", "site", "target", "issued_at", "nonce")


def sign_command(payload: dict, private_key: Ed25519PrivateKey) -> dict:
    """A copy of ``payload`` (with a fresh ``nonce`` if it has none) and its signature."""
    body = {k: v for k, v in payload.items() if k != "signature"}
    body.setdefault("nonce", secrets.token_hex(16))
    value = private_key.sign(canonical_bytes(body))
    body["signature"] = {"alg": "ed25519", "key_id": key_id(private_key.public_key()),
                         "value": base64.b64encode(value).decode("ascii")}
    return body


def verify_command(payload: object, public_key: Ed25519PublicKey | None, *, name: str, site: str,
                   device_id: str, now: float, max_age_s: float, clock_synced: bool = True) -> dict:
    """Check signature, command name, target and age; return the payload or raise CommandError."""
    if public_key is None:
        raise CommandError(f"{name} refused: no central public key installed "
                           "(mqtt.roster_public_key_file); signed commands cannot be checked")
    if not isinstance(payload, dict):
        raise CommandError(f"{name} refused: payload must be a JSON object")
    _check_signature(payload, public_key, name)
    missing = [k for k in SIGNED_KEYS if not isinstance(payload.get(k), str)]
    if missing:
        raise CommandError(f"{name} refused: signed fields missing: {', '.join(missing)}")
    if payload["command"] != name:
        raise CommandError(f"{name} refused: the signature is for command {payload['command']!r}")
    if payload["site"] != site or payload["target"] not in (device_id, ALL_DEVICES):
        raise CommandError(f"{name} refused: signed for {payload['site']}/{payload['target']}, "
                           f"this device is {site}/{device_id}")
    if not 16 <= len(payload["nonce"]) <= 64:
        raise CommandError(f"{name} refused: nonce must be 16-64 characters")
    if clock_synced:
        _check_age(payload["issued_at"], now, max_age_s, name)
    return payload


def _check_signature(payload: dict, public_key: Ed25519PublicKey, name: str) -> None:
    sig = payload.get("signature")
    if not isinstance(sig, dict) or sig.get("alg") != "ed25519" or not isinstance(sig.get("value"), str):
        raise CommandError(f"{name} refused: not signed (expected signature.alg = 'ed25519')")
    try:
        value = base64.b64decode(sig["value"], validate=True)
        public_key.verify(value, canonical_bytes(payload))
    except (binascii.Error, ValueError, BundleError):
        raise CommandError(f"{name} refused: malformed signature") from None
    except InvalidSignature:
        raise CommandError(f"{name} refused: the signature does not verify with the central key "
                           f"(key id {key_id(public_key)})") from None


def _check_age(issued_at: str, now: float, max_age_s: float, name: str) -> None:
    try:
        issued = datetime.fromisoformat(issued_at.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"{name} refused: issued_at {issued_at[:40]!r} is not an ISO time") from None
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=timezone.utc)
    age = now - issued.timestamp()
    if age > max_age_s:
        raise CommandError(f"{name} refused: issued {age:.0f} s ago, older than {max_age_s:.0f} s "
                           "(ask the centre to re-send it)")
    if age < -FUTURE_SKEW_S:
        raise CommandError(f"{name} refused: issued {-age:.0f} s in the future (check both clocks)")
