"""Is the system clock synchronised? The kernel's answer (``adjtimex``), read-only.

Time stamps on events are only as good as the clock: a Pi without a real-time clock boots
in the past until NTP (systemd-timesyncd, chrony) has synchronised it. The kernel keeps the
answer: ``adjtimex`` with no mode bits set changes nothing and returns the clock state,
``TIME_ERROR`` (5) while unsynchronised (``STA_UNSYNC``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

TIME_ERROR = 5
TIMEX_BYTES = 512  # larger than struct timex on every Linux ABI; zeroed = modes 0 = read only


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


def clock_synced() -> bool | None:
    """True when the kernel says the clock is synchronised, False when not, None if unknown."""
    libc = _libc()
    if libc is None or not hasattr(libc, "adjtimex"):
        return None
    state = libc.adjtimex(ctypes.create_string_buffer(TIMEX_BYTES))
    if state < 0:
        return None
    return state != TIME_ERROR
