"""Detached-in-place Ed25519 signatures over raw message bytes. Pure, no I/O.

A signed message is a JSON object whose LAST member is ``"signature"``::

    <body bytes without the closing brace>,"signature":{"alg":"ed25519","key_id":"..","value":".."}}

The signature covers the body bytes exactly as sent, closed with ``}`` (the central side
sends the canonical form: sorted keys, compact, UTF-8, so a parsed-then-re-encoded body
gives the same bytes). The receiver finds the last ``,"signature":`` member, parses only
that small member and verifies BEFORE it parses the (up to 4 MiB) body: a flood of large
messages with bad signatures costs one SHA-512 pass each, not a JSON parse.
"""

from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware.errors import BundleError

MARKER = b',"signature":'
MAX_SIGNATURE_MEMBER = 512  # bytes of the trailing signature object


def canonical(body: dict) -> bytes:
    """Sorted keys, compact, UTF-8, no NaN: the bytes the central side signs."""
    try:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise BundleError(f"message is not plain JSON ({exc})") from None


def signature_member(signed: bytes, private_key: Ed25519PrivateKey, key_id: str) -> dict:
    """The ``signature`` object for ``signed`` bytes."""
    value = base64.b64encode(private_key.sign(signed)).decode("ascii")
    return {"alg": "ed25519", "key_id": key_id, "value": value}


def sign_raw(body: dict, private_key: Ed25519PrivateKey, key_id: str) -> bytes:
    """Wire bytes of ``body`` (without ``signature``) with the signature appended last."""
    if not body:
        raise BundleError("cannot sign an empty object")
    signed = canonical({k: v for k, v in body.items() if k != "signature"})
    member = json.dumps(signature_member(signed, private_key, key_id), separators=(",", ":"))
    return signed[:-1] + MARKER + member.encode("ascii") + b"}"


def split_signed(raw: bytes, what: str = "message") -> tuple[bytes, dict]:
    """(signed body bytes, signature object) of a message; BundleError when not in that form."""
    raw = bytes(raw).rstrip()
    at = raw.rfind(MARKER)
    if at <= 0 or not raw.endswith(b"}") or len(raw) - at > MAX_SIGNATURE_MEMBER:
        raise BundleError(f"{what} has no ed25519 signature as its last field "
                          "(sign it with the `rollcall central` tools)")
    try:
        member = json.loads(raw[at + len(MARKER):-1].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise BundleError(f"{what} signature field is not a JSON object") from None
    if not isinstance(member, dict) or member.get("alg") != "ed25519" \
            or not isinstance(member.get("value"), str):
        raise BundleError(f"{what} has no ed25519 signature (expected signature.alg = 'ed25519')")
    return raw[:at] + b"}", member


def verify_member(signed: bytes, member: dict, public_key: Ed25519PublicKey) -> bool:
    """True when ``member`` is a valid signature of ``signed`` by ``public_key``."""
    try:
        public_key.verify(base64.b64decode(member["value"], validate=True), signed)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
