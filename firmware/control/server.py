"""The firmware's control API server: HTTP+JSON on a Unix socket (mode 0660).

The console (a separate process, possibly another user in the same group) reaches the
firmware only through this socket. The server gets the firmware's ``Store`` and a
``DeviceAPI`` and never touches the camera, the models or GPIO itself.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Callable, Protocol

from cheroot import wsgi

from firmware.control.api import create_control_app as _create_control_app
from firmware.errors import ControlError

logger = logging.getLogger(__name__)

SOCKET_MODE = 0o660


class DeviceAPI(Protocol):
    """What the control server needs from the running firmware (see docs/interfaces.md)."""

    def status(self) -> dict: ...

    def latest_jpeg(self, annotated: bool = True) -> bytes | None: ...

    def kiosk_state(self) -> dict: ...

    def enrol_photos(self, person_id: str, photos: list[bytes], *, source: str = "photo",
                     confirm_duplicate: bool = False) -> list[dict]: ...

    def capture_start(self, person_id: str, frames: int = 5, timeout_s: float = 60.0) -> dict: ...

    def capture_status(self) -> dict | None: ...

    def capture_cancel(self) -> dict | None: ...

    def capture_frame_jpeg(self, index: int) -> bytes | None: ...

    def capture_keep(self, keep: list[int], *, confirm_duplicate: bool = False) -> list[dict]: ...

    def reload_config(self) -> dict: ...

    def test_indicators(self) -> dict: ...

    def test_broker(self, mqtt: dict) -> dict: ...

    def session_command(self, action: str, session_id: str, by: str, liveness_policy: str | None = None) -> dict: ...

    def erase(self, person_id: str, by: str, full: bool = False, reason: str = "request",
              request_id: str | None = None) -> dict: ...  # store.erase + stop matching them

    def clock_state(self) -> dict: ...     # synced, source, lower_bound, behind_s, clamped


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file left by a crashed firmware; refuse to delete anything else."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(f"{path} exists and is not a socket: move it away or choose another "
                           "paths.control_socket")
    path.unlink()
    logger.info("removed stale control socket %s", path)


class ControlServer:
    """Serve ``create_control_app(store, device)`` on ``socket_path`` in a background thread.

    Use as a context manager or call ``start()`` / ``close()`` (safe twice).
    """

    def __init__(self, socket_path: str | os.PathLike, store, device: DeviceAPI, *,
                 clock: Callable[[], float] = time.monotonic, numthreads: int = 10,
                 app=None) -> None:
        self.socket_path = Path(socket_path)
        self.store = store
        self.device = device
        self.clock = clock
        self.numthreads = numthreads
        self._app = app
        self._server: wsgi.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "ControlServer":
        if self._server is not None:
            return self
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_socket(self.socket_path)
        app = self._app or create_control_app(self.store, self.device, clock=self.clock)
        server = wsgi.Server(str(self.socket_path), app, numthreads=self.numthreads,
                             server_name="rollcall-control", shutdown_timeout=1)
        server.prepare()
        os.chmod(self.socket_path, SOCKET_MODE)
        self._server = server
        self._thread = threading.Thread(target=server.serve, name="control-api", daemon=True)
        self._thread.start()
        logger.info("control API listening on %s", self.socket_path)
        return self

    def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass
        logger.info("control API stopped")

    def __enter__(self) -> "ControlServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def create_control_app(store, device: DeviceAPI, *, clock: Callable[[], float] = time.monotonic):
    """The control API as a Bottle app (re-exported from ``firmware.control.api``)."""
    return _create_control_app(store, device, clock=clock)
