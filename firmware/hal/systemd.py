"""systemd service notifications (sd_notify), written here: no libsystemd dependency.

Messages go as one datagram to the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a leading
``@`` means the abstract namespace). Without that variable every call is a no-op, so the
firmware runs the same outside systemd.

The device loop sends ``READY=1`` once it runs, ``WATCHDOG=1`` from :meth:`Notifier.tick`
only while it is healthy (frames processed, or healthily idle with no camera), and
``STOPPING=1`` on shutdown. ``$WATCHDOG_USEC`` (set by ``WatchdogSec=``) gives the
interval; we ping at half of it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Mapping

logger = logging.getLogger(__name__)


def _address(path: str) -> str:
    return "\0" + path[1:] if path.startswith("@") else path


class Notifier:
    """sd_notify sender. ``environ`` and ``clock`` (monotonic seconds) are injectable."""

    def __init__(self, *, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        env = os.environ if environ is None else environ
        self.path = env.get("NOTIFY_SOCKET", "")
        self.clock = clock
        self.interval_s = self._interval(env)
        self._last_ping = float("-inf")
        self._sock: socket.socket | None = None
        self._warned = False
        self.sent: list[str] = []  # last messages, for status (bounded)

    @staticmethod
    def _interval(env: Mapping[str, str]) -> float | None:
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if not usec.isdigit() or (pid and pid != str(os.getpid())):
            return None
        return int(usec) / 1e6 / 2

    @property
    def enabled(self) -> bool:
        return bool(self.path)

    def notify(self, message: str) -> bool:
        """Send one notification (e.g. ``READY=1``); False when not under systemd or the
        send failed (logged once)."""
        if not self.path:
            return False
        try:
            if self._sock is None:  # non-blocking: a full queue must never stall the loop
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message.encode("utf-8"), _address(self.path))
        except OSError as exc:
            if not self._warned:
                logger.warning("cannot notify systemd at %s: %s", self.path, exc)
                self._warned = True
            return False
        self.sent = (self.sent + [message])[-20:]
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def tick(self, healthy: bool) -> bool:
        """Call every loop iteration: pings the watchdog at half its interval while
        ``healthy``; an unhealthy loop stops pinging and systemd restarts the service."""
        if not healthy or not self.path:
            return False
        interval = self.interval_s if self.interval_s is not None else 5.0
        now = self.clock()
        if now - self._last_ping < interval:
            return False
        self._last_ping = now
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        """Close the socket (safe twice)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
