"""Topic names of the MQTT contract v1 (docs/mqtt-contract.md), built in one place.

Device root: ``<prefix>/<site>/<device_id>/``; rosters: ``<prefix>/<site>/roster/<room>``
and ``<prefix>/<site>/roster/_all``. Pure string functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTRACT_VERSION = "v1"
ALL_ROOMS = "_all"
EVENT_KINDS = ("attendance", "unknown", "spoof", "session", "erasure")
COMMAND_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
HA_PREFIX = "homeassistant"


@dataclass(frozen=True)
class Topics:
    """Every topic one device publishes to or subscribes to."""

    prefix: str
    site: str
    device_id: str
    room: str

    @property
    def root(self) -> str:
        return f"{self.prefix}/{self.site}/{self.device_id}"

    @property
    def status(self) -> str:
        return f"{self.root}/status"

    @property
    def telemetry(self) -> str:
        return f"{self.root}/telemetry"

    @property
    def commands(self) -> str:
        """Subscription filter for incoming commands (one level: results are not echoed)."""
        return f"{self.root}/cmd/+"

    def event(self, suffix: str) -> str:
        """Full topic of an outbox entry whose topic suffix is e.g. ``event/attendance``."""
        return f"{self.root}/{suffix}"

    def result(self, name: str) -> str:
        return f"{self.root}/cmd/{name}/result"

    def rosters(self) -> list[str]:
        """Retained roster topics this device listens to: its room, then the whole site."""
        base = f"{self.prefix}/{self.site}/roster"
        return [f"{base}/{self.room}", f"{base}/{ALL_ROOMS}"]

    def command_name(self, topic: str) -> str | None:
        """``<root>/cmd/<name>`` -> name (None for any other topic)."""
        head = f"{self.root}/cmd/"
        if not topic.startswith(head):
            return None
        name = topic[len(head):]
        return name if "/" not in name else None

    def is_roster(self, topic: str) -> bool:
        return topic in self.rosters()


def roster_topic(prefix: str, site: str, room: str) -> str:
    """Where the central side publishes (retained) the bundle for ``room`` (or ``_all``)."""
    return f"{prefix}/{site}/roster/{room}"


def central_filters(prefix: str) -> list[str]:
    """Subscriptions of the central collector: every device's events and status."""
    return [f"{prefix}/+/+/event/#", f"{prefix}/+/+/status"]


def split_device_topic(prefix: str, topic: str) -> tuple[str, str, str] | None:
    """``<prefix>/<site>/<device>/<rest>`` -> (site, device, rest); None if not a device topic."""
    if not topic.startswith(prefix + "/"):
        return None
    parts = topic[len(prefix) + 1:].split("/", 2)
    if len(parts) != 3 or parts[1] == "roster":
        return None
    return parts[0], parts[1], parts[2]
