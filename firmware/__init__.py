"""Rollcall firmware: the single owner of the camera, models, GPIO, data files and MQTT link."""

__version__ = "0.1.0"
