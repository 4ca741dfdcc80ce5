"""The MQTT link (contract v1, docs/mqtt-contract.md), paho-mqtt 2.x.

- ``mqtt.MqttLink``: the device's connection: outbox drain, status, telemetry, commands.
- ``drain.Drain``: oldest-first, bounded window, removed from the outbox only on PUBACK.
- ``bundle``: signed roster bundles (pure): ``sign_bundle``, ``verify_bundle``.
- ``roster.RosterSync``: verify then ``store.rosters.apply_bundle``.
- ``commands.CommandDispatcher``: ``cmd/<name>`` -> one result, never an exception.
- ``client``: paho client from ``MqttConfig`` (TLS, credentials, will) and clear errors.
- ``topics`` / ``payloads``: names and JSON of the contract; ``state``: backoff, down/up logging.
- ``devicechild``: a minimal device process (Store + MqttLink) for tests and benchmarks.
"""
