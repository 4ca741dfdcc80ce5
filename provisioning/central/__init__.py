"""Reference central side of the MQTT contract v1 (docs/mqtt-contract.md), fleet-sized.

- ``collect``: :class:`Collector`, device messages into SQLite or PostgreSQL, PUBACK after
  commit, one or several processes (MQTT v5 shared subscription);
- ``ingest``: the idempotent batch writer (events, status with stale-will protection,
  telemetry, rejects);
- ``db``: the two database engines behind one wrapper, and the versioned migrations;
- ``export``: attendance CSV per session, room and day range, absentees included;
- ``roster``: signing key, bundles, publishing one or many rooms, remembering them;
- ``devices``: the fleet status table;
- ``command``: signed downlink commands (``rollcall central command``);
- ``cli``: the ``rollcall central ...`` commands.
"""

from provisioning.central.collect import Collector, collector_filters
from provisioning.central.command import send_command, sign_command
from provisioning.central.db import Database, connect
from provisioning.central.export import Selection, export, export_session
from provisioning.central.roster import (build_bundle, generate_keypair, load_private_key, publish_bundle,
                                         publish_bundles, record_rosters, rosters_from_csv)
from provisioning.central.cli import mqtt_config, register  # noqa: E402 - after its dependencies

__all__ = ["Collector", "collector_filters", "Database", "connect", "Selection", "export", "export_session",
           "build_bundle", "generate_keypair", "load_private_key", "publish_bundle", "publish_bundles",
           "record_rosters", "rosters_from_csv", "mqtt_config", "register", "send_command", "sign_command"]
