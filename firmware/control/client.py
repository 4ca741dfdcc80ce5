"""Client of the firmware's control API (HTTP+JSON over a Unix socket). Used by the console."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode

from firmware.errors import ControlError

logger = logging.getLogger(__name__)


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

    def __init__(self, socket_path: str | os.PathLike, timeout: float = 5) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout

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
