"""Turns damage and exhaustion the device can see into persistent operator notices.

Checked from the loop's housekeeping (about once a second, the disk every ``DISK_CHECK_S``):
a data disk with less than ``DISK_MIN_FREE_MB`` or ``DISK_MIN_FREE_FRACTION`` free, and
image-folder camera files that cannot be read. The store itself raises notices for files
it moved aside and journals with unreadable steps (``firmware.store.notices``).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Callable, NamedTuple, Protocol

logger = logging.getLogger(__name__)

DISK_MIN_FREE_MB = 200
DISK_MIN_FREE_FRACTION = 0.05
DISK_CHECK_S = 30.0


class Usage(NamedTuple):
    total: int
    used: int
    free: int


class NoticeBoard(Protocol):
    def raise_(self, key: str, kind: str, message: str, lost: str = "", copy: str = "") -> dict: ...


def disk_low(usage: Usage) -> bool:
    """True below 200 MB or 5 % free."""
    return usage.free < DISK_MIN_FREE_MB * 2**20 or usage.free < DISK_MIN_FREE_FRACTION * usage.total


class DamageWatch:
    """Raises ``disk_low`` and ``camera_files_unreadable`` notices (each once while active)."""

    def __init__(self, data_dir: Path, notices: NoticeBoard, clock: Callable[[], float] = time.monotonic,
                 usage: Callable[[str], Usage] = shutil.disk_usage) -> None:
        self.data_dir, self.notices, self.clock, self.usage = Path(data_dir), notices, clock, usage
        self._next_disk = 0.0
        self._camera_seen: set[str] = set()

    def check(self, camera_status: dict) -> None:
        now = self.clock()
        if now >= self._next_disk:
            self._next_disk = now + DISK_CHECK_S
            self.check_disk()
        self.check_camera(camera_status)

    def check_disk(self) -> None:
        try:
            usage = self.usage(str(self.data_dir))
        except OSError as exc:
            logger.warning("cannot read the free space of %s: %s", self.data_dir, exc)
            return
        if disk_low(usage):
            free_mb, pct = usage.free // 2**20, 100 * usage.free / max(1, usage.total)
            self.notices.raise_("disk_low", "disk_low",
                                f"the data disk is nearly full: {free_mb} MB free ({pct:.1f} %) "
                                f"at {self.data_dir}", lost="new attendance, photos and events "
                                "cannot be saved once it is full: free space or move old backups")

    def check_camera(self, status: dict) -> None:
        names = set((status.get("unreadable_files") or {}))
        new = names - self._camera_seen
        if not new:
            return
        self._camera_seen |= names
        shown = ", ".join(sorted(names)[:5]) + (" ..." if len(names) > 5 else "")
        self.notices.raise_(f"camera_files:{status.get('source')}", "camera_files_unreadable",
                            f"{len(names)} file(s) of the camera folder {status.get('source')} cannot "
                            f"be read and are skipped: {shown}",
                            lost="those frames (nobody in them can be recognised)")
