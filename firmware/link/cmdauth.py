"""Authenticated downlink commands: Ed25519 signature, target, freshness and replay checks.

A command message (``<root>/cmd/<name>``) is a signed JSON object (``firmware.link.signing``:
the signature is its last field and covers the raw bytes before it)::

    {"command": "session_start", "target": {"site": "s1", "device": "dev-1"} | {"site": "s1", "room": "hall"},
     "issued_at": 1764490000, "nonce": "<16-64 of A-Z a-z 0-9 _ ->", "request_id": "r1",
     ...arguments..., "signature": {"alg": "ed25519", "key_id": "<16 hex>", "value": "<base64>"}}

Refused, each with a reason: no or bad signature, a name different from the topic's, another
site/device/room, ``issued_at`` further than ``window_s`` from the device clock (either way),
a nonce already accepted (the nonces of the window are kept in a 0600 file, so a restart does
not reopen the window). The audit actor is ``central:<key_id>``, never a payload field.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from firmware.config import DeviceConfig, MqttConfig, secret_path
from firmware.errors import BundleError, CommandError
from firmware.link.bundle import key_id, load_public_key, parse_json
from firmware.link.signing import sign_raw, split_signed, verify_member
from firmware.store.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

AUTH_FIELDS = ("command", "target", "issued_at", "nonce", "signature")
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
MAX_NONCES = 10_000
DEFAULT_WINDOW_S = 300.0
NONCE_FILE = "command-nonces.json"


class NonceBook:
    """Nonces accepted within the freshness window, persisted (0600 JSON) before each use."""

    def __init__(self, path: Path | None, window_s: float) -> None:
        self.path = Path(path) if path else None
        self.window_s = window_s
        self._seen: dict[str, float] = self._load()

    def _load(self) -> dict[str, float]:
        if self.path is None or not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text())
            return {str(k): float(v) for k, v in data.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            logger.error("command nonce file %s unreadable; commands older than the window "
                         "are still refused", self.path)
            return {}

    def seen(self, nonce: str) -> bool:
        return nonce in self._seen

    def add(self, nonce: str, issued_at: float, now: float) -> None:
        """Remember ``nonce`` (issued at UNIX seconds ``issued_at``) and drop expired ones."""
        horizon = now - 2 * self.window_s
        self._seen = {k: v for k, v in self._seen.items() if v >= horizon}
        if len(self._seen) >= MAX_NONCES:
            raise CommandError(f"more than {MAX_NONCES} commands within the window; slow down")
        self._seen[nonce] = issued_at
        if self.path is not None:
            atomic_write_bytes(self.path, json.dumps(self._seen).encode(), 0o600)


class CommandAuth:
    """Checks that a command was signed by the centre for this device, recently, once."""

    def __init__(self, keys: list[Ed25519PublicKey], *, site: str, device_id: str, room: str,
                 nonces: NonceBook, window_s: float = DEFAULT_WINDOW_S,
                 wall: Callable[[], float] = time.time, key_problem: str = "") -> None:
        self._keys = {key_id(k): k for k in keys}
        self._site, self._device, self._room = site, device_id, room
        self._nonces, self._window_s, self._wall = nonces, window_s, wall
        self._key_problem = key_problem or "no command public key installed"
        self._lock = threading.Lock()
        self.refused = 0

    def check(self, name: str, raw: bytes) -> tuple[dict, str]:
        """(payload without the auth fields, actor) or CommandError saying why it is refused."""
        try:
            payload, actor = self._check(name, raw)
        except CommandError:
            self.refused += 1
            raise
        return payload, actor

    def _check(self, name: str, raw: bytes) -> tuple[dict, str]:
        if not self._keys:
            raise CommandError(f"command refused: {self._key_problem}")
        try:
            signed, member = split_signed(raw, "command")
        except BundleError as exc:
            raise CommandError(f"command refused: {exc}") from None
        kid = member.get("key_id")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None or not verify_member(signed, member, key):
            raise CommandError("command refused: the signature does not verify with the "
                               f"installed command key (key id {', '.join(self._keys)})")
        try:
            payload = parse_json(signed)
        except BundleError as exc:
            raise CommandError(f"command refused: {str(exc).replace('bundle', 'payload')}") from None
        self._check_fields(name, payload)
        return {k: v for k, v in payload.items() if k not in AUTH_FIELDS}, f"central:{kid}"

    def _check_fields(self, name: str, payload: dict) -> None:
        if payload.get("command") != name:
            raise CommandError(f"command refused: signed for {str(payload.get('command'))[:40]!r}, "
                               f"received on cmd/{name}")
        self._check_target(payload.get("target"))
        issued = payload.get("issued_at")
        if not isinstance(issued, (int, float)) or isinstance(issued, bool):
            raise CommandError("command refused: issued_at (UNIX seconds) is missing")
        now = self._wall()
        if abs(now - issued) > self._window_s:
            raise CommandError(f"command refused: expired (issued {now - issued:+.0f} s from the "
                               f"device clock; the window is {self._window_s:g} s)")
        nonce = payload.get("nonce")
        if not isinstance(nonce, str) or not NONCE_RE.match(nonce):
            raise CommandError("command refused: nonce must be 16-64 of A-Z a-z 0-9 _ -")
        with self._lock:
            if self._nonces.seen(nonce):
                raise CommandError("command refused: replayed (this nonce was already used)")
            self._nonces.add(nonce, float(issued), now)

    def _check_target(self, target: object) -> None:
        if not isinstance(target, dict) or target.get("site") != self._site:
            raise CommandError(f"command refused: target is not site {self._site!r}")
        if "device" in target and target["device"] == self._device and "room" not in target:
            return
        if "room" in target and target["room"] == self._room and "device" not in target:
            return
        raise CommandError(f"command refused: target {json.dumps(target)[:80]} is not this device "
                           f"({self._device!r}) or its room ({self._room!r})")


def load_command_keys(paths: list[Path | None]) -> tuple[list[Ed25519PublicKey], str]:
    """Public keys from the first configured PEM file that exists; (keys, problem text)."""
    for path in [p for p in paths if p is not None]:
        path = secret_path(Path(path)) or Path(path)
        try:
            pem = path.read_bytes()
            if pem.strip():
                return [load_public_key(pem)], ""
        except OSError as exc:
            return [], f"cannot read command public key {path}: {exc.strerror}"
        except BundleError as exc:
            return [], f"{path}: {exc}"
    return [], ("no command public key installed (mqtt.command_public_key_file or "
                "mqtt.roster_public_key_file); every command is refused")


def build_command_auth(mqtt_cfg: MqttConfig, device_cfg: DeviceConfig,
                       data_dir: Path | None) -> CommandAuth:
    """The device's checker: keys from the config, nonces in ``<data_dir>/link/``."""
    keys, problem = load_command_keys([mqtt_cfg.command_public_key_file,
                                       mqtt_cfg.roster_public_key_file])
    if problem:
        logger.error("%s", problem)
    nonces = NonceBook(Path(data_dir) / "link" / NONCE_FILE if data_dir else None,
                       mqtt_cfg.command_max_age_s)
    return CommandAuth(keys, site=device_cfg.site, device_id=device_cfg.id, room=device_cfg.room,
                       nonces=nonces, window_s=mqtt_cfg.command_max_age_s, key_problem=problem)


def sign_command(name: str, target: dict, private_key: Ed25519PrivateKey, args: dict | None = None,
                 *, request_id: str | None = None, issued_at: float | None = None,
                 nonce: str | None = None) -> bytes:
    """Central side: the wire bytes of a signed command (``args`` are its arguments)."""
    body = dict(args or {})
    body.update({"command": name, "target": dict(target),
                 "issued_at": int(time.time() if issued_at is None else issued_at),
                 "nonce": nonce or secrets.token_urlsafe(18)})
    if request_id is not None:
        body["request_id"] = request_id
    return sign_raw(body, private_key, key_id(private_key.public_key()))
