"""Client of the firmware's control API (HTTP+JSON over a Unix socket). Used by the console.

:class:`ControlClient` has one typed method per route of the control API (each marked
with :func:`route`, so a test can check that the client and the server's route table
agree) and raises one error type, :class:`~firmware.errors.ControlError`. It carries the
acting user in the ``X-Rollcall-Actor`` header (:meth:`ControlClient.as_actor`): the
firmware's store audits every change with it, in the same journal step as the change.

This module must not import the console, Bottle or the store: it only speaks HTTP+JSON.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import quote, urlencode

from firmware.errors import ControlError

logger = logging.getLogger(__name__)

ACTOR_HEADER = "X-Rollcall-Actor"
F = TypeVar("F", bound=Callable[..., Any])


def route(method: str, rule: str) -> Callable[[F], F]:
    """Mark a client method as the caller of the server route ``method rule`` (the rule
    exactly as the server declares it, e.g. ``/v1/people/<person_id>``)."""

    def mark(fn: F) -> F:
        fn.control_route = (method, rule)  # type: ignore[attr-defined]
        return fn

    return mark


def client_routes() -> set[tuple[str, str]]:
    """Every (method, rule) that :class:`ControlClient` calls."""
    return {fn.control_route for fn in vars(ControlClient).values() if hasattr(fn, "control_route")}


def _q(value: str) -> str:
    return quote(str(value), safe="")


def control_error(message: str, status: int | None = None, field: str | None = None) -> ControlError:
    """A ControlError carrying the HTTP ``status`` (None: no answer) and the bad ``field``."""
    err = ControlError(message)
    err.status, err.field = status, field
    return err


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class ControlClient:
    """``get`` / ``post`` / ``delete`` return parsed JSON; failures raise ``ControlError``.

    ``ControlError.status`` is the HTTP status (None when the firmware is unreachable) and
    ``ControlError.field`` the offending field, if the firmware named one.
    """

    def __init__(self, socket_path: str | os.PathLike, timeout: float = 5,
                 actor: str | None = None) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout
        self.actor = actor

    def as_actor(self, actor: str | None) -> "ControlClient":
        """The same client acting for ``actor`` (the user whose changes get audited)."""
        return ControlClient(self.socket_path, self.timeout, actor)

    def _not_running(self, exc: OSError | None = None) -> ControlError:
        if isinstance(exc, PermissionError):
            return control_error(f"no permission to use the control socket {self.socket_path} "
                                 "(is the console user in the rollcall group?)")
        return control_error(f"the firmware is not running (no control socket at {self.socket_path})")

    def _open(self, method: str, path: str, body: bytes | None = None,
              timeout: float | None = None) -> tuple[_UnixConnection, http.client.HTTPResponse]:
        if not Path(self.socket_path).exists():
            raise self._not_running()
        conn = _UnixConnection(self.socket_path, timeout or self.timeout)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.actor:
            headers[ACTOR_HEADER] = self.actor
        try:
            try:
                conn.request(method, path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered early (e.g. 413) and closed: read that answer
            return conn, conn.getresponse()
        except (ConnectionRefusedError, FileNotFoundError, PermissionError) as exc:
            conn.close()
            raise self._not_running(exc) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise control_error(f"the firmware did not answer {method} {path}: {exc}") from None

    def request_raw(self, method: str, path: str, body: bytes | None = None,
                    timeout: float | None = None) -> tuple[int, str, bytes]:
        """(status, content type, body bytes) without interpreting the answer."""
        conn, resp = self._open(method, path, body, timeout)
        try:
            return resp.status, resp.getheader("Content-Type", ""), resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise control_error(f"the firmware's answer to {path} was cut: {exc}") from None
        finally:
            conn.close()

    def _json(self, method: str, path: str, data: Any = None, timeout: float | None = None) -> Any:
        body = json.dumps(data).encode("utf-8") if data is not None else None
        status, _ctype, raw = self.request_raw(method, path, body, timeout)
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"error": raw[:200].decode("utf-8", "replace")}
        if status >= 400:
            raise control_error(parsed.get("error") or f"firmware answered HTTP {status}", status,
                                parsed.get("field"))
        return parsed

    def get(self, path: str, params: dict | None = None, timeout: float | None = None) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        return self._json("GET", f"{path}?{urlencode(clean)}" if clean else path, None, timeout)

    def post(self, path: str, data: Any = None, timeout: float | None = None) -> Any:
        return self._json("POST", path, data if data is not None else {}, timeout)

    def delete(self, path: str, timeout: float | None = None) -> Any:
        return self._json("DELETE", path, None, timeout)

    def get_bytes(self, path: str, timeout: float | None = None) -> bytes:
        """A binary resource (JPEG); ControlError when it is missing."""
        status, ctype, raw = self.request_raw("GET", path, None, timeout)
        if status >= 400:
            try:
                message = json.loads(raw).get("error")
            except ValueError:
                message = None
            raise control_error(message or f"firmware answered HTTP {status}", status)
        return raw

    def stream(self, path: str, chunk: int = 65536) -> tuple[str, Iterator[bytes]]:
        """(content type, chunks) of a long response such as the MJPEG stream."""
        conn, resp = self._open("GET", path, None, timeout=30)
        if resp.status >= 400:
            conn.close()
            raise control_error(f"firmware answered HTTP {resp.status} for {path}", resp.status)
        ctype = resp.getheader("Content-Type", "application/octet-stream")

        def chunks() -> Iterator[bytes]:
            try:
                while True:
                    data = resp.read1(chunk)
                    if not data:
                        return
                    yield data
            except OSError:
                return
            finally:
                conn.close()

        return ctype, chunks()

    def ping(self) -> bool:
        """True when the firmware answers /v1/status."""
        try:
            self.get("/v1/status", timeout=2)
            return True
        except ControlError:
            return False

    # ---- device -------------------------------------------------------------------------
    @route("GET", "/v1/status")
    def status(self, timeout: float | None = 2) -> dict:
        """The device's status (camera, models, broker, sessions, warnings)."""
        return self.get("/v1/status", timeout=timeout)

    @route("GET", "/v1/kiosk")
    def kiosk(self, timeout: float | None = 2) -> dict:
        """What the door's display shows now."""
        return self.get("/v1/kiosk", timeout=timeout)

    @route("GET", "/v1/snapshot.jpg")
    def snapshot(self, annotated: bool = True) -> bytes:
        """The latest camera frame as JPEG (boxes drawn unless ``annotated`` is False)."""
        return self.get_bytes("/v1/snapshot.jpg" + ("" if annotated else "?annotated=0"))

    @route("GET", "/v1/stream.mjpg")
    def live_stream(self, max_s: float = 600) -> tuple[str, Iterator[bytes]]:
        """(content type, chunks) of the MJPEG live view, at most ``max_s`` seconds."""
        return self.stream(f"/v1/stream.mjpg?max_s={max_s:g}")

    @route("POST", "/v1/config/reload")
    def reload_config(self) -> dict:
        """Ask the firmware to re-read config.toml; ``restart_needed`` lists sections."""
        return self.post("/v1/config/reload")

    @route("POST", "/v1/restart")
    def restart(self) -> dict:
        """Ask the firmware to exit so its service manager starts it again (code 75)."""
        return self.post("/v1/restart", timeout=5)

    @route("POST", "/v1/indicators/test")
    def test_indicators(self) -> dict:
        return self.post("/v1/indicators/test", timeout=15)

    @route("POST", "/v1/broker/test")
    def test_broker(self, mqtt: dict) -> dict:
        """Try a connection with these MQTT settings (not saved)."""
        return self.post("/v1/broker/test", {"mqtt": mqtt}, timeout=15)

    @route("GET", "/v1/notices")
    def notices(self, include_acknowledged: bool = False) -> list[dict]:
        """Damage notices, unacknowledged ones only unless ``include_acknowledged``."""
        return self.get("/v1/notices", {"all": 1} if include_acknowledged else None)["items"]

    @route("POST", "/v1/notices/<notice_id>/ack")
    def acknowledge_notice(self, notice_id: str) -> dict:
        """Mark a damage notice seen by this actor (audited)."""
        return self.post(f"/v1/notices/{_q(notice_id)}/ack", {})

    @route("GET", "/v1/audit")
    def audit(self, limit: int = 200) -> list[dict]:
        """Newest audit records first."""
        return self.get("/v1/audit", {"limit": limit})["items"]

    @route("POST", "/v1/audit")
    def record_event(self, action: str, target: str | None = None, details: dict | None = None) -> dict:
        """Audit an event that changes no stored data (a login, a download) as this actor."""
        return self.post("/v1/audit", {"actor": self.actor or "anonymous", "action": action,
                                       "target": target, "details": details or {}})

    # ---- people and unknown faces --------------------------------------------------------
    @route("GET", "/v1/people")
    def people(self, search: str | None = None) -> list[dict]:
        return self.get("/v1/people", {"q": search})["items"]

    @route("POST", "/v1/people")
    def create_person(self, name: str, person_id: str | None = None,
                      external_id: str | None = None, **extra: Any) -> dict:
        body = {"name": name, "person_id": person_id, "external_id": external_id, **extra}
        return self.post("/v1/people", {k: v for k, v in body.items() if v is not None})

    @route("GET", "/v1/people/<person_id>")
    def person(self, person_id: str, timeout: float | None = None) -> dict:
        """A person with their photos/templates."""
        return self.get(f"/v1/people/{_q(person_id)}", timeout=timeout)

    @route("POST", "/v1/people/<person_id>")
    def update_person(self, person_id: str, **fields: Any) -> dict:
        return self.post(f"/v1/people/{_q(person_id)}", fields)

    @route("DELETE", "/v1/people/<person_id>")
    def delete_person(self, person_id: str, full: bool = False) -> dict:
        """Delete a person and erase their face data; attendance records keep the name
        and number they had unless ``full`` (a full erasure) is asked for."""
        return self.delete(f"/v1/people/{_q(person_id)}" + ("?full=1" if full else ""))

    @route("POST", "/v1/people/<person_id>/photos")
    def add_photos(self, person_id: str, images: list[bytes], timeout: float = 120, **extra: Any) -> dict:
        """Enrol photos (JPEG/PNG bytes): ``{"results": [...], "accepted": n}``."""
        body = {"images": [base64.b64encode(i).decode("ascii") for i in images], **extra}
        return self.post(f"/v1/people/{_q(person_id)}/photos", body, timeout=timeout)

    @route("GET", "/v1/people/<person_id>/photos/<photo_id>")
    def photo(self, person_id: str, photo_id: str) -> bytes:
        return self.get_bytes(f"/v1/people/{_q(person_id)}/photos/{_q(photo_id)}")

    @route("GET", "/v1/people/<person_id>/templates")
    def templates(self, person_id: str, source: str | None = None) -> list[dict]:
        """A person's templates (``source`` photo | device | door to filter), oldest first."""
        return self.get(f"/v1/people/{_q(person_id)}/templates", {"source": source})["items"]

    @route("DELETE", "/v1/people/<person_id>/templates/<embedding_id>")
    def delete_template(self, person_id: str, embedding_id: str) -> dict:
        """Remove one template (e.g. a door-learnt one): ``{"deleted", "source"}``."""
        return self.delete(f"/v1/people/{_q(person_id)}/templates/{_q(embedding_id)}")

    @route("GET", "/v1/unknowns")
    def unknowns(self, kind: str | None = None, session_id: str | None = None,
                 state: str | None = None) -> list[dict]:
        return self.get("/v1/unknowns", {"kind": kind, "session_id": session_id, "state": state})["items"]

    @route("GET", "/v1/unknowns/<unknown_id>")
    def unknown(self, unknown_id: str) -> dict:
        return self.get(f"/v1/unknowns/{_q(unknown_id)}")

    @route("GET", "/v1/unknowns/<unknown_id>/crop.jpg")
    def unknown_crop(self, unknown_id: str) -> bytes:
        return self.get_bytes(f"/v1/unknowns/{_q(unknown_id)}/crop.jpg")

    @route("POST", "/v1/unknowns/<unknown_id>/resolve")
    def resolve_unknown(self, unknown_id: str, action: str, person_id: str | None = None,
                        **extra: Any) -> dict:
        """``assign`` (to ``person_id``) or ``discard`` an unknown/spoof face."""
        body = {"action": action, "person_id": person_id, "by": self.actor or "console", **extra}
        return self.post(f"/v1/unknowns/{_q(unknown_id)}/resolve", body, timeout=30)

    # ---- privacy: consent, erasure, retention, subject access -------------------------------
    @route("POST", "/v1/people/<person_id>/consent")
    def set_consent(self, person_id: str, basis: str) -> dict:
        """Record the legal basis (consent | contract | legal_obligation) for face data."""
        return self.post(f"/v1/people/{_q(person_id)}/consent",
                         {"basis": basis, "by": self.actor or "console"})

    @route("POST", "/v1/people/<person_id>/withdraw")
    def withdraw_consent(self, person_id: str) -> dict:
        """Consent withdrawn: the erasure record (face data erased)."""
        return self.post(f"/v1/people/{_q(person_id)}/withdraw", {"by": self.actor or "console"},
                         timeout=60)

    @route("POST", "/v1/people/<person_id>/erase")
    def erase_person(self, person_id: str, full: bool = False) -> dict:
        """Erase the person's face data everywhere (``full``: the person too)."""
        return self.post(f"/v1/people/{_q(person_id)}/erase",
                         {"by": self.actor or "console", "full": full}, timeout=60)

    @route("GET", "/v1/people/<person_id>/export")
    def person_export(self, person_id: str) -> dict:
        """Everything held about one person (subject access)."""
        return self.get(f"/v1/people/{_q(person_id)}/export", timeout=30)

    @route("GET", "/v1/erasures")
    def erasures(self, person_id: str | None = None) -> list[dict]:
        return self.get("/v1/erasures", {"person_id": person_id})["items"]

    @route("GET", "/v1/privacy")
    def privacy(self) -> dict:
        """What is held and until when, review list, clock, last sweep."""
        return self.get("/v1/privacy")

    @route("POST", "/v1/privacy/sweep")
    def retention_sweep(self) -> dict:
        return self.post("/v1/privacy/sweep", {"by": self.actor or "console"}, timeout=60)

    # ---- enrolment at the door (capture mode) ---------------------------------------------
    @route("POST", "/v1/capture")
    def start_capture(self, person_id: str, frames: int = 5, timeout_s: float = 60.0) -> dict:
        """Start keeping ``frames`` good frames of the person in front of the camera."""
        return self.post("/v1/capture", {"person_id": person_id, "frames": frames, "timeout_s": timeout_s})

    @route("GET", "/v1/capture")
    def capture(self, timeout: float | None = 3) -> dict:
        """The running or last capture (ControlError 404 when there is none)."""
        return self.get("/v1/capture", timeout=timeout)

    @route("POST", "/v1/capture/cancel")
    def cancel_capture(self) -> dict:
        return self.post("/v1/capture/cancel")

    @route("GET", "/v1/capture/frames/<index:int>")
    def capture_frame(self, index: int) -> bytes:
        """JPEG of kept frame ``index``."""
        return self.get_bytes(f"/v1/capture/frames/{int(index)}", timeout=3)

    @route("POST", "/v1/capture/keep")
    def keep_capture(self, keep: list[int], confirm_duplicate: bool = False) -> dict:
        """Store the kept frames ``keep`` as ``device`` templates; the rest are discarded."""
        return self.post("/v1/capture/keep", {"keep": keep, "confirm_duplicate": confirm_duplicate}, timeout=60)

    # ---- rosters, sessions, attendance -----------------------------------------------------
    @route("GET", "/v1/rosters")
    def rosters(self) -> list[dict]:
        return self.get("/v1/rosters")["items"]

    @route("POST", "/v1/rosters")
    def create_roster(self, name: str, entries: list[dict]) -> dict:
        return self.post("/v1/rosters", {"name": name, "entries": entries})

    @route("GET", "/v1/rosters/<roster_id>")
    def roster(self, roster_id: str) -> dict:
        return self.get(f"/v1/rosters/{_q(roster_id)}")

    @route("POST", "/v1/rosters/<roster_id>")
    def update_roster(self, roster_id: str, **changes: Any) -> dict:
        """Change ``name`` and/or ``entries``."""
        return self.post(f"/v1/rosters/{_q(roster_id)}", changes)

    @route("DELETE", "/v1/rosters/<roster_id>")
    def delete_roster(self, roster_id: str) -> dict:
        return self.delete(f"/v1/rosters/{_q(roster_id)}")

    @route("GET", "/v1/sessions")
    def sessions(self, day: str | None = None, room: str | None = None,
                 state: str | None = None) -> list[dict]:
        return self.get("/v1/sessions", {"day": day, "room": room, "state": state})["items"]

    @route("POST", "/v1/sessions")
    def create_session(self, **fields: Any) -> dict:
        """``roster_id``, ``room``, ``name``, ``scheduled_start``, ``scheduled_end``[, ``late_after``,
        ``liveness_policy``]."""
        return self.post("/v1/sessions", fields)

    @route("GET", "/v1/sessions/<session_id>")
    def session(self, session_id: str) -> dict:
        return self.get(f"/v1/sessions/{_q(session_id)}")

    @route("GET", "/v1/sessions/<session_id>/grid")
    def session_grid(self, session_id: str, timeout: float | None = None) -> dict:
        """Every roster member with their status in this session."""
        return self.get(f"/v1/sessions/{_q(session_id)}/grid", timeout=timeout)

    @route("POST", "/v1/sessions/<session_id>/<action:re:start|stop|cancel>")
    def session_command(self, session_id: str, action: str, liveness_policy: str | None = None) -> dict:
        """``start`` | ``stop`` | ``cancel`` a session; ``liveness_policy`` (start only) sets
        the session's liveness policy first."""
        body: dict[str, Any] = {"by": self.actor or "console"}
        if liveness_policy:
            body["liveness_policy"] = liveness_policy
        return self.post(f"/v1/sessions/{_q(session_id)}/{_q(action)}", body)

    @route("POST", "/v1/sessions/<session_id>/attendance")
    def set_attendance_status(self, session_id: str, person_id: str, status: str) -> dict:
        """Correct one person's status by hand (audited)."""
        return self.post(f"/v1/sessions/{_q(session_id)}/attendance",
                         {"person_id": person_id, "status": status, "by": self.actor or "console"})

    @route("GET", "/v1/attendance")
    def attendance(self, timeout: float | None = None, **filters: Any) -> dict:
        """A page of attendance records: ``{"items", "total", "offset", "limit"}``."""
        return self.get("/v1/attendance", filters, timeout=timeout)

    @route("GET", "/v1/reports/rosters/<roster_id>")
    def roster_report(self, roster_id: str, day_from: str | None = None, day_to: str | None = None,
                      flag_below: float | None = None, timeout: float | None = 30) -> dict:
        """Per-person rates and per-session counts of a roster over local days
        [day_from, day_to]; people below ``flag_below`` (a fraction) are flagged."""
        return self.get(f"/v1/reports/rosters/{_q(roster_id)}",
                        {"day_from": day_from, "day_to": day_to, "flag_below": flag_below},
                        timeout=timeout)
