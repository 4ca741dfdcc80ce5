"""Remote commands: ``cmd/<name>`` in, ``cmd/<name>/result`` out. Never raises.

Every message gets exactly one result: ``{"command", "request_id", "ok", "result" | "error"}``.
Unknown names, retained commands, oversized, unsigned, expired, replayed or wrongly targeted
payloads (``firmware.link.cmdauth``) and failing handlers all become an error result with a
reason; the link keeps running. Delegated commands get ``by`` = the signing key's actor
(``central:<key_id>``), never a name taken from the payload.
"""

from __future__ import annotations

import logging
from typing import Callable

from firmware.errors import CommandError, RollcallError
from firmware.link.bundle import MAX_BUNDLE_BYTES
from firmware.link.cmdauth import CommandAuth
from firmware.link.payloads import command_result
from firmware.link.topics import COMMAND_RE

logger = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 64 * 1024
BIG_COMMANDS = {"roster_sync": MAX_BUNDLE_BYTES + 64 * 1024}
DELEGATED = frozenset({"session_start", "session_stop", "erasure"})
INVALID_NAME = "_invalid"

Handler = Callable[[dict], dict]


class CommandDispatcher:
    """Routes a command to a local handler or to the composition root's ``commands``."""

    def __init__(self, device_id: str, local: dict[str, Handler],
                 delegate: Callable[[str, dict], dict] | None, *, auth: CommandAuth,
                 delegated: frozenset[str] | set[str] = DELEGATED) -> None:
        self._device_id = device_id
        self.auth = auth
        self._local = dict(local)
        self._delegate = delegate
        self._delegated = frozenset(delegated) - set(local)

    @property
    def names(self) -> list[str]:
        return sorted(set(self._local) | (self._delegated if self._delegate else set()))

    def handle(self, name: str, raw: bytes, retained: bool = False) -> tuple[str, dict]:
        """Run one command; returns (result name, result message)."""
        if not COMMAND_RE.match(name):
            return INVALID_NAME, self._error(INVALID_NAME, None, f"invalid command name {name[:40]!r}")
        try:
            payload, actor = self._parse(name, raw, retained)
        except CommandError as exc:
            logger.warning("command %s refused: %s", name, exc)
            return name, self._error(name, None, str(exc))
        request_id = payload.get("request_id")
        try:
            result = self._run(name, payload, actor)
        except (RollcallError, ValueError) as exc:
            logger.warning("command %s failed: %s", name, exc)
            return name, self._error(name, request_id, str(exc))
        except Exception:  # noqa: BLE001 - a remote command must never kill the link
            logger.exception("command %s crashed", name)
            return name, self._error(name, request_id, f"internal error running {name}; see the device log")
        return name, command_result(name, request_id, True, self._device_id, result=result)

    def _parse(self, name: str, raw: bytes, retained: bool) -> tuple[dict, str]:
        """Size and retain checks, then the signature (before any JSON parse); (payload, actor)."""
        if retained:
            self.auth.refused += 1
            raise CommandError("retained commands are ignored; publish commands with retain=false")
        limit = BIG_COMMANDS.get(name, MAX_COMMAND_BYTES)
        if len(raw) > limit:
            self.auth.refused += 1
            raise CommandError(f"payload is {len(raw)} bytes, more than the {limit} byte limit")
        payload, actor = self.auth.check(name, bytes(raw))
        request_id = payload.get("request_id")
        if request_id is not None and (not isinstance(request_id, str) or len(request_id) > 64):
            raise CommandError("request_id must be a string of at most 64 characters")
        return payload, actor

    def _run(self, name: str, payload: dict, actor: str) -> dict:
        if name in self._local:
            return self._local[name](payload)
        if name in self._delegated and self._delegate is not None:
            args = {k: v for k, v in payload.items() if k not in ("request_id", "by")}
            args["by"] = actor
            result = self._delegate(name, args)
            if not isinstance(result, dict):
                raise CommandError(f"{name} returned no result")
            return result
        raise CommandError(f"unknown command {name!r}; known: {', '.join(self.names)}")

    def _error(self, name: str, request_id: object, message: str) -> dict:
        rid = request_id if isinstance(request_id, str) else None
        return command_result(name, rid, False, self._device_id, error=message)
