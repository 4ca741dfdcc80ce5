"""Device configuration: one TOML file validated by pydantic before anything starts.

The console validates edits with this same schema, writes the file atomically and then
asks the firmware to reload. Secrets are never stored here: fields ending in ``_file``
point at 0600 files (or systemd credentials) that hold them.

Each section belongs to one concern; unknown keys are rejected (``extra="forbid"``) so a
typo is an error, not a silently ignored setting.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from firmware.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/rollcall/config.toml")
CONFIG_ENV = "ROLLCALL_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DeviceConfig(_Section):
    id: str = Field("", description="Device id, unique in the fleet (MQTT client id and topic); made from "
                                     "/etc/machine-id at install, editable in the console's Device setup.",
                    pattern=r"^[A-Za-z0-9_.-]{0,64}$")
    name: str = Field("Rollcall", description="Human name shown in the console.", max_length=80)
    site: str = Field("default", description="Site (school, office) this device belongs to.",
                      pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    room: str = Field("default", description="Room or door this device watches.",
                      pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    timezone: str = Field("UTC", description="IANA time zone for schedules and reports.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use e.g. Europe/London)") from exc
        return value


class PathsConfig(_Section):
    data_dir: Path = Field(Path("/var/lib/rollcall"), description="Firmware-owned state (TinyDB files, crops).")
    models_dir: Path = Field(Path("/var/lib/rollcall/models"), description="Built model artifacts.")
    control_socket: Path = Field(Path("/run/rollcall/control.sock"),
                                 description="Unix socket of the firmware's control API (mode 0660).")
    log_dir: Path = Field(Path("/var/log/rollcall"), description="Where the firmware keeps recent logs for diagnostics.")


class CameraConfig(_Section):
    source: str = Field("auto", description="auto | picamera2 | webcam | webcam:N | a video file or image folder path.")
    width: int = Field(1280, ge=160, le=4096, description="Main stream width in pixels.")
    height: int = Field(720, ge=120, le=4096, description="Main stream height in pixels.")
    fps: float = Field(15.0, gt=0, le=120, description="Requested capture rate in frames per second.")
    detect_width: int = Field(640, ge=128, le=1920, description="Width in pixels of the downscaled (lores) frame used for detection.")
    replay_realtime: bool = Field(True, description="File replay at native speed (True) or as fast as possible.")
    replay_loop: bool = Field(True, description="Restart a replayed file at its end.")
    retry_max_s: float = Field(30.0, gt=0, le=600, description="Longest backoff in seconds between camera reopen attempts.")


class DetectionConfig(_Section):
    model: str = Field("blazeface_short", description="Detector model id from models/manifest.toml.")
    score_threshold: float = Field(0.6, ge=0.05, le=0.99, description="Minimum detector score.")
    min_face_px: int = Field(64, ge=16, le=1024, description="Minimum face box width in full-frame pixels.")
    max_faces: int = Field(5, ge=1, le=20, description="Most faces handled per frame.")


class RecognitionConfig(_Section):
    embedder: str = Field("dlib_resnet_int8", description="Embedder model id from models/manifest.toml.")
    security_level: Literal["low", "normal", "high"] = Field(
        "normal", description="Target false accepts per visit of a person who is not enrolled, at the roster size in "
                              "force: low = 1 in 1,000, normal = 1 in 10,000, high = 1 in 100,000 (thresholds from "
                              "models/calibration.toml).")
    match_threshold: float | None = Field(None, ge=-1, le=1,
                                          description="Expert override: raw track-score cosine to accept; None uses "
                                                      "security_level (the console warns below level low).")
    margin: float | None = Field(None, ge=0, le=1,
                                 description="Cosine by which the best person must beat the runner-up person; "
                                             "None uses the embedder's default_margin from the manifest.")
    embeddings_per_track: int = Field(6, ge=1, le=12, description="Good-quality frames a track needs before it can be "
                                                                  "decided unknown (accepting needs less).")
    learn_at_door: bool = Field(False, description="Keep the embedding of a confident, live, well-margined accept as "
                                                   "an extra template (source door; listable and removable).")
    door_templates_max: int = Field(3, ge=1, le=20, description="Most door-learned templates kept per person "
                                                                "(the oldest is dropped).")


class LivenessConfig(_Section):
    policy: Literal["blink", "blink_challenge", "challenge", "off"] = Field(
        "blink", description="blink | blink_challenge (1..N blinks) | challenge (random head-pose prompts) | "
                             "off (testing only).")
    window_s: float = Field(6.0, gt=0.5, le=60, description="Seconds a person has to blink (or finish the challenge).")
    min_closed_s: float = Field(0.04, ge=0.0, le=1.0, description="Shortest eye closure in seconds that counts.")
    max_closed_s: float = Field(0.6, gt=0.05, le=3.0, description="Longest closure in seconds that is still a blink.")
    closed_ratio: float = Field(0.65, gt=0.1, lt=1.0, description="Closed when openness < ratio x the person's open baseline.")
    reopen_ratio: float = Field(0.85, gt=0.1, le=1.0, description="Open again when openness > ratio x baseline.")
    max_yaw_deg: float = Field(25.0, gt=0, le=90, description="Largest head yaw in degrees accepted as frontal.")
    max_pitch_deg: float = Field(25.0, gt=0, le=90, description="Largest head pitch in degrees accepted as frontal.")
    min_sharpness: float = Field(20.0, ge=0, description="Minimum variance of the Laplacian on the face crop.")
    challenge_max_blinks: int = Field(3, ge=1, le=5, description="blink_challenge policy asks for 1..N blinks.")
    challenge_min_steps: int = Field(2, ge=1, le=5, description="challenge policy: fewest prompts per try.")
    challenge_max_steps: int = Field(3, ge=1, le=5, description="challenge policy: most prompts per try.")
    challenge_step_s: float = Field(2.5, ge=1.0, le=10.0, description="Seconds to complete each prompt once shown.")
    challenge_tries: int = Field(2, ge=1, le=5, description="Failed tries after which the track is a spoof.")
    challenge_yaw_deg: float = Field(15.0, ge=5.0, le=45.0,
                                     description="Turn left/right: degrees of yaw from the person's neutral pose.")
    challenge_pitch_deg: float = Field(10.0, ge=5.0, le=45.0,
                                       description="Look up/down: degrees of pitch from the person's neutral pose.")
    challenge_reaction_s: float = Field(0.2, ge=0.0, le=1.0,
                                        description="A move that starts sooner than this after its prompt is too early.")

    @model_validator(mode="after")
    def _steps_order(self) -> LivenessConfig:
        if self.challenge_min_steps > self.challenge_max_steps:
            raise ValueError("challenge_min_steps must not exceed challenge_max_steps")
        return self


class DecisionConfig(_Section):
    cooldown_s: float = Field(30.0, ge=0, le=86400, description="Seconds before the same person is decided again.")
    retry_after_s: float = Field(8.0, gt=0, le=120, description="Seconds without a decision before a track is told to retry.")
    open_door: bool = Field(False, description="With no active session, match against everyone enrolled.")
    save_unknown_frame: bool = Field(False, description="Also keep the full frame of an unknown face (not just the crop).")


class PinConfig(_Section):
    pin: int | None = Field(None, ge=0, le=27, description="BCM pin number; None disables the part.")
    active_high: bool = Field(True, description="True: pin high = on.")


class GpioConfig(_Section):
    enabled: bool = Field(True, description="Drive indicators; False runs with no GPIO at all.")
    pin_factory: str | None = Field(None, description="gpiozero pin factory name (lgpio, mock...); None: gpiozero's default.")
    green: PinConfig = Field(default_factory=lambda: PinConfig(pin=17), description="Green LED: accepted.")
    red: PinConfig = Field(default_factory=lambda: PinConfig(pin=27), description="Red LED: unknown / spoof.")
    amber: PinConfig = Field(default_factory=lambda: PinConfig(pin=22), description="Amber LED: look / blink / busy.")
    buzzer: PinConfig = Field(default_factory=lambda: PinConfig(pin=23), description="Buzzer.")
    relay: PinConfig = Field(default_factory=PinConfig, description="Optional door-strike relay.")
    relay_pulse_s: float = Field(2.0, gt=0, le=30, description="Relay pulse length in seconds.")
    button: PinConfig = Field(default_factory=PinConfig, description="Optional button: start/stop the session.")


class MqttConfig(_Section):
    enabled: bool = Field(True, description="Report to the central broker.")
    host: str = Field("", description="Broker host name or address; empty = not configured.")
    port: int = Field(1883, ge=1, le=65535, description="Broker TCP port (8883 usually for TLS).")
    prefix: str = Field("rollcall/v1", description="Topic root; the device uses <prefix>/<site>/<device_id>/.")
    username: str = Field("", description="MQTT user name.")
    password_file: Path | None = Field(None, description="File (0600) holding the MQTT password.")
    tls: bool = Field(False, description="Use TLS.")
    ca_file: Path | None = Field(None, description="CA certificate that signed the broker's certificate.")
    cert_file: Path | None = Field(None, description="Client certificate (optional).")
    key_file: Path | None = Field(None, description="Client private key (optional, 0600).")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive in seconds.")
    telemetry_interval_s: float = Field(60.0, ge=1, le=86400, description="Seconds between telemetry messages.")
    max_inflight: int = Field(20, ge=1, le=1000, description="QoS 1 messages in flight while draining the outbox.")
    roster_public_key_file: Path | None = Field(None, description="Ed25519 public key (PEM) that signs roster bundles.")
    command_public_key_file: Path | None = Field(None, description="Ed25519 public key (PEM) that signs downlink commands; empty = the roster key.")
    command_max_age_s: float = Field(300.0, ge=10, le=86400, description="Seconds a signed command stays valid either side of the device clock; older ones are refused as expired.")
    ha_discovery: bool = Field(False, description="Publish Home Assistant MQTT discovery messages.")


class StoreConfig(_Section):
    retention_days: int = Field(90, ge=1, le=3650, description="Days attendance records and finished sessions are kept.")
    unknown_retention_days: int = Field(30, ge=1, le=3650,
                                        description="Days crops (and full frames) of unknown and spoof faces are kept.")
    audit_retention_days: int = Field(365, ge=1, le=3650, description="Days audit files are kept.")
    outbox_max_events: int = Field(100_000, ge=100, le=10_000_000, description="Outbox bound; warns at 80 %.")
    outbox_max_age_days: int = Field(30, ge=1, le=3650, description="Oldest unsent event age before a loud warning.")


BASES = ("consent", "contract", "legal_obligation")


class PrivacyConfig(_Section):
    default_basis: Literal["consent", "contract", "legal_obligation"] | None = Field(
        None, description="Legal basis recorded when an enrolment path names none (consent | contract | "
                          "legal_obligation); None: every enrolment must name its basis.")
    review_absent_days: int = Field(90, ge=1, le=3650,
                                    description="Days a person with face data may be on no roster before "
                                                "the console flags their templates for review.")
    schedule_needs_synced_clock: bool = Field(True, description="Refuse to start or end sessions by schedule "
                                                                "while the clock is not synchronised.")
    clock_source: Literal["auto", "assume_synced"] = Field(
        "auto", description="auto: ask timedatectl, then the kernel (adjtimex), then timesyncd's marker "
                            "file; assume_synced: trust the clock (only with a battery-backed RTC).")


class ConsoleConfig(_Section):
    bind: str = Field("0.0.0.0", description="Address the console listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Console TCP port.")
    https: bool = Field(False, description="Serve HTTPS with the certificate made at provisioning.")
    cert_file: Path | None = Field(None, description="TLS certificate for HTTPS.")
    key_file: Path | None = Field(None, description="TLS key for HTTPS (0600).")
    secrets_dir: Path = Field(Path("/var/lib/rollcall-console"), description="Console-owned files: admin hash, session key.")
    max_upload_mb: float = Field(8.0, gt=0, le=50, description="Largest accepted upload in MiB.")


class Config(_Section):
    """The whole device configuration (one TOML file)."""

    device: DeviceConfig = Field(default_factory=DeviceConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    liveness: LivenessConfig = Field(default_factory=LivenessConfig)
    decisions: DecisionConfig = Field(default_factory=DecisionConfig)
    gpio: GpioConfig = Field(default_factory=GpioConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)


def _field_errors(exc: ValidationError) -> dict[str, str]:
    """{dotted key: message} for every problem pydantic found."""
    fields: dict[str, str] = {}
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        fields.setdefault(where, err["msg"])
    return fields


def _format_errors(fields: dict[str, str], source: str) -> str:
    lines = [f"{source}: invalid configuration:"]
    lines += [f"  {where}: {message}" for where, message in fields.items()]
    return "\n".join(lines)


def parse_config(data: dict, source: str = "config") -> Config:
    """Validate a dict (e.g. parsed TOML); raise ConfigError with every problem listed."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        fields = _field_errors(exc)
        raise ConfigError(_format_errors(fields, source), fields) from None


def startup_problems(config: Config) -> dict[str, str]:
    """{dotted key: problem} for a schema-valid config that the device could not run as
    asked. The console refuses to save such a config; the firmware, handed one anyway
    (edited by hand), starts degraded and names the problem in its status."""
    problems: dict[str, str] = {}
    if not config.device.id:
        problems["device.id"] = ("set a device id (letters, digits, '_', '.', '-'): it is the "
                                 "MQTT client id and part of every topic")
    if config.mqtt.host and not _is_host(config.mqtt.host):
        problems["mqtt.host"] = ("a host name or address only (no mqtt://, user or port: "
                                 "the port has its own field)")
    pins = {}
    for part in ("green", "red", "amber", "buzzer", "relay", "button"):
        pin = getattr(config.gpio, part).pin
        if pin is not None and pin in pins:
            problems[f"gpio.{part}.pin"] = f"BCM {pin} is already used by {pins[pin]}"
        elif pin is not None:
            pins[pin] = part
    if config.console.https and not (config.console.cert_file and config.console.key_file):
        problems["console.https"] = "HTTPS needs console.cert_file and console.key_file (rollcall provision --https)"
    return problems


def _is_host(host: str) -> bool:
    """True for an IPv4/IPv6 address or a DNS host name (what paho can connect to)."""
    import ipaddress
    import re

    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return re.fullmatch(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})", host) is not None


def check_startable(config: Config, source: str = "settings") -> None:
    """Raise ConfigError (with ``fields``) when :func:`startup_problems` finds any."""
    problems = startup_problems(config)
    if problems:
        raise ConfigError(_format_errors(problems, source), problems)


SECRET_WORDS = ("password", "secret", "token", "key", "username")


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_diff(old: Config, new: Config) -> dict[str, str]:
    """{dotted key: "old -> new"} for every setting that differs; values of keys that name
    a secret (password, key, token, user name) are masked."""
    before = _flatten(old.model_dump(mode="json"))
    after = _flatten(new.model_dump(mode="json"))
    diff = {}
    for key in sorted(set(before) | set(after)):
        if before.get(key) == after.get(key):
            continue
        if any(word in key.rsplit(".", 1)[-1] for word in SECRET_WORDS):
            diff[key] = "*** -> *** (changed)"
        else:
            diff[key] = f"{_show(before.get(key))} -> {_show(after.get(key))}"
    return diff


def _show(value: object) -> str:
    return "(none)" if value is None else repr(value) if isinstance(value, str) else str(value).lower() \
        if isinstance(value, bool) else str(value)


MACHINE_ID_FILE = Path("/etc/machine-id")


def machine_device_id(machine_id_file: Path = MACHINE_ID_FILE) -> str:
    """A stable device id from the machine id: ``rc-`` + 10 hex digits of
    sha256("rollcall:" + machine id) (the raw machine id is never exposed, as systemd
    asks); the host name when there is no machine id."""
    import hashlib
    import socket

    try:
        seed = machine_id_file.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        seed = ""
    if not seed:
        name = "".join(c if c.isalnum() or c in "_.-" else "-" for c in socket.gethostname())
        return (name or "rollcall")[:64]
    return "rc-" + hashlib.sha256(f"rollcall:{seed}".encode()).hexdigest()[:10]


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    """The config file to use: explicit argument, $ROLLCALL_CONFIG, /etc/rollcall/config.toml
    when it exists, then the dev config that ``./install.sh --dev`` named in this venv's
    ``rollcall-dev-config`` file (so `.venv/bin/rollcall models verify` finds var/config.toml)."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    if DEFAULT_CONFIG_PATH.exists():
        return DEFAULT_CONFIG_PATH
    return dev_config_path() or DEFAULT_CONFIG_PATH


DEV_MARKER = "rollcall-dev-config"


def dev_config_path(prefix: str | os.PathLike | None = None) -> Path | None:
    """The dev config recorded in ``<venv>/rollcall-dev-config`` by ``./install.sh --dev``
    (None outside such a venv, or when that file is gone)."""
    import sys

    if prefix is None and sys.prefix == sys.base_prefix:
        return None
    try:
        named = (Path(prefix or sys.prefix) / DEV_MARKER).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return Path(named) if named and Path(named).is_file() else None


def load_config(path: str | os.PathLike | None = None) -> Config:
    """Load and validate the config file; a missing file gives the defaults."""
    file = config_path(path)
    if not file.exists():
        return Config()
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    return parse_config(data, str(file))


def dump_config(config: Config) -> str:
    """Serialise a Config to TOML text (None values are left out)."""
    import tomli_w

    data = config.model_dump(mode="json", exclude_none=True)
    return tomli_w.dumps(data)


def write_config_atomic(config: Config, path: str | os.PathLike, mode: int = 0o640) -> None:
    """Write the config file atomically (temp file, fsync, rename, fsync dir)."""
    from firmware.store.atomic import atomic_write_bytes

    atomic_write_bytes(Path(path), dump_config(config).encode("utf-8"), mode=mode)


def secret_path(path: str | os.PathLike | None) -> Path | None:
    """Where to read a ``*_file`` secret (MQTT password, TLS files, roster key) from.

    On a device the files live root-only in /etc/rollcall/credentials/ and systemd hands
    each to the firmware as ``$CREDENTIALS_DIRECTORY/<file name>`` (``LoadCredential=`` in
    systemd/rollcall-firmware.service); elsewhere (dev, tests) the configured path is used.
    An empty credential file means "not set" (install.sh creates them empty).
    """
    if path is None:
        return None
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        candidate = Path(credentials) / Path(path).name
        if candidate.is_file():
            return candidate
    return Path(path)
