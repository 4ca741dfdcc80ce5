"""One exception tree for Rollcall.

Every class also inherits the built-in that fits, so callers can catch either
``RollcallError`` or the usual ``ValueError`` / ``OSError`` / ``RuntimeError``.
Messages say what was wrong and what to do; they never contain secrets.
"""


class RollcallError(Exception):
    """Base of every error raised on purpose by Rollcall."""


class ConfigError(RollcallError, ValueError):
    """The configuration file or a setting is invalid. ``fields`` maps each dotted key
    that is wrong (``device.id``) to what is wrong with it, when known."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = dict(fields or {})


class ModelError(RollcallError, RuntimeError):
    """A model is missing, corrupt, or does not match the manifest."""


class ModelHashMismatch(ModelError):
    """A built model's SHA-256 differs from the manifest."""


class RuntimeUnavailable(ModelError, ImportError):
    """Neither ai-edge-litert nor tflite-runtime can be imported."""


class ImageError(RollcallError, ValueError):
    """An image could not be decoded or is unusable (too small, corrupt, wrong format)."""


class EnrolmentError(RollcallError, ValueError):
    """An enrolment photo was rejected (no face, several faces, different person...)."""


class CaptureError(EnrolmentError):
    """An enrolment capture at the door cannot start or be kept (no such person, one is running...)."""


class CameraError(RollcallError, OSError):
    """The camera could not be opened or stopped delivering frames."""


class NoCameraFound(CameraError):
    """No picamera2 camera and no webcam was found."""


class StoreError(RollcallError, OSError):
    """A data file could not be read or written."""


class LinkError(RollcallError, ConnectionError):
    """The MQTT link failed (broker unreachable, TLS refused...)."""


class BundleError(RollcallError, ValueError):
    """A roster bundle was rejected (bad signature, schema, model id or version)."""


class CommandError(RollcallError, ValueError):
    """A remote or control command was malformed or not allowed."""


class SessionError(RollcallError, ValueError):
    """A session transition is not allowed (e.g. completing a cancelled session)."""


class ControlError(RollcallError, ConnectionError):
    """The console could not talk to the firmware's control socket."""
