"""Is the system clock synchronised? Three ways to ask, first answer wins.

A Raspberry Pi has no battery-backed clock: after a power cut without network it boots
with a wrong time until NTP syncs. :class:`TimedatectlSource` asks systemd
(``timedatectl show -p NTPSynchronized --value``), :class:`AdjtimexSource` asks the kernel
(``adjtimex(2)`` via ctypes, :mod:`firmware.hal.clock`: state ``TIME_ERROR`` = not
synchronised), :class:`MarkerFileSource` looks for the file systemd-timesyncd touches on
sync. Each answers True, False or None (cannot tell); :class:`ChainSource` returns the first
True/False, and "not synchronised" when nobody can tell (a time nobody vouches for is not
trusted). Every source is cheap except timedatectl (a subprocess, at most 2 s): callers
cache the answer (``firmware/runtime/clock.py`` re-asks every 30 s).
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Protocol

from firmware.hal.clock import clock_synced

logger = logging.getLogger(__name__)

TIMESYNCD_MARKER = Path("/run/systemd/timesync/synchronized")
NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class SyncSource(Protocol):
    name: str

    def synchronised(self) -> bool | None:
        """True / False, or None when this source cannot tell."""


class TimedatectlSource:
    """systemd's view (``NTPSynchronized``); None without systemd or timedatectl."""

    name = "timedatectl"

    def __init__(self, command: tuple[str, ...] = ("timedatectl", "show", "-p", "NTPSynchronized",
                                                   "--value"), timeout_s: float = 2.0) -> None:
        self.command, self.timeout_s = command, timeout_s

    def synchronised(self) -> bool | None:
        # without our sd_notify socket: systemd tools report their own errors there (ERRNO=)
        env = {k: v for k, v in os.environ.items() if k not in NOTIFY_VARS}
        try:
            done = subprocess.run(self.command, capture_output=True, text=True, timeout=self.timeout_s,
                                  check=False, env=env)
        except (OSError, subprocess.SubprocessError):
            return None
        answer = done.stdout.strip().lower()
        if done.returncode != 0 or answer not in ("yes", "no"):
            return None
        return answer == "yes"


class AdjtimexSource:
    """The kernel's NTP state (``firmware.hal.clock.clock_synced``: ``adjtimex``, read-only)."""

    name = "adjtimex"

    def synchronised(self) -> bool | None:
        return clock_synced()


class MarkerFileSource:
    """systemd-timesyncd touches a file once it has synchronised; None when it is absent."""

    name = "timesyncd-marker"

    def __init__(self, path: Path = TIMESYNCD_MARKER) -> None:
        self.path = path

    def synchronised(self) -> bool | None:
        return True if self.path.exists() else None


class FixedSource:
    """A fixed answer: ``privacy.clock_source = "assume_synced"`` (a device with a real
    RTC), and tests."""

    def __init__(self, value: bool | None, name: str = "fixed") -> None:
        self.value, self.name = value, name

    def synchronised(self) -> bool | None:
        return self.value


class ChainSource:
    """Ask each source in turn; the first True/False wins (``last`` names it)."""

    def __init__(self, sources: list[SyncSource]) -> None:
        self.sources = sources
        self.last = "none"

    @property
    def name(self) -> str:
        return self.last

    def synchronised(self) -> bool | None:
        for source in self.sources:
            try:
                answer = source.synchronised()
            except Exception:  # noqa: BLE001 - one broken source must not hide the others
                logger.exception("clock sync source %s failed", source.name)
                answer = None
            if answer is not None:
                self.last = source.name
                return answer
        self.last = "none"
        return None


def default_source(mode: str = "auto") -> SyncSource:
    """The production chain (``auto``): timedatectl, then adjtimex, then the marker file."""
    if mode == "assume_synced":
        return FixedSource(True, "config: assume_synced")
    return ChainSource([TimedatectlSource(), AdjtimexSource(), MarkerFileSource()])
