"""The provisioning answers: from flags, a `--from FILE` (TOML) and, on a TTY, prompts.

Precedence: command-line flag > ``--from`` file > prompt > what the config already has.
Secrets (MQTT password, console admin password) are read from files, stdin (``-``) or a
hidden prompt, never from a flag value (it would show in ``ps`` and shell history).

Example ``--from`` file (relative paths are relative to the file)::

    [device]
    id = "door-12"
    site = "north-campus"
    room = "hall-b"
    timezone = "Europe/London"

    [mqtt]
    broker = "mqtts://broker.example.org:8883"
    username = "door-12"
    password_file = "secrets/door-12.password"
    ca_file = "ca.pem"

    [console]
    admin_username = "admin"
    setup_code = true            # or admin_password_file = "..."
    https = true

    [roster]
    public_key_file = "roster-signing.pub"
"""

from __future__ import annotations

import getpass
import sys
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from firmware.errors import ConfigError

_SCHEMES = {"mqtt": (False, 1883), "tcp": (False, 1883), "mqtts": (True, 8883), "ssl": (True, 8883)}

# --from file layout: (section, key) -> answer field
_FILE_KEYS = {
    ("device", "id"): "device_id", ("device", "name"): "name", ("device", "site"): "site",
    ("device", "room"): "room", ("device", "timezone"): "timezone",
    ("mqtt", "broker"): "broker", ("mqtt", "username"): "mqtt_username",
    ("mqtt", "password_file"): "mqtt_password_file", ("mqtt", "ca_file"): "ca_file",
    ("mqtt", "cert_file"): "client_cert", ("mqtt", "key_file"): "client_key",
    ("console", "admin_username"): "admin_username",
    ("console", "admin_password_file"): "admin_password_file",
    ("console", "setup_code"): "setup_code", ("console", "https"): "https",
    ("console", "port"): "console_port", ("roster", "public_key_file"): "roster_key",
}
_PATH_FIELDS = {"mqtt_password_file", "ca_file", "client_cert", "client_key",
                "admin_password_file", "roster_key"}
_SECRET_KEYS = {("mqtt", "password"), ("console", "admin_password")}


@dataclass
class Broker:
    """A parsed broker URL: ``mqtt://host[:port]`` or ``mqtts://host[:port]`` (TLS)."""

    host: str
    port: int
    tls: bool


@dataclass
class Answers:
    """Everything `rollcall provision` may set; None means "leave as it is"."""

    device_id: str | None = None
    name: str | None = None
    site: str | None = None
    room: str | None = None
    timezone: str | None = None
    broker: str | None = None
    mqtt_username: str | None = None
    mqtt_password_file: str | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    admin_username: str | None = None
    admin_password_file: str | None = None
    setup_code: bool | None = None
    https: bool | None = None
    console_port: int | None = None
    roster_key: str | None = None
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def merge(self, other: "Answers") -> None:
        """Fill every field still None from ``other``."""
        for item in fields(self):
            if item.name != "secrets" and getattr(self, item.name) is None:
                setattr(self, item.name, getattr(other, item.name))
        for key, value in other.secrets.items():
            self.secrets.setdefault(key, value)


def parse_broker(url: str) -> Broker:
    """Parse ``mqtt[s]://host[:port]``; a bare ``host[:port]`` means plain MQTT."""
    if "://" not in url:
        url = f"mqtt://{url}"
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ConfigError(f"broker {url!r}: scheme must be mqtt:// or mqtts:// (TLS)")
    tls, default_port = _SCHEMES[parts.scheme]
    try:
        port = parts.port or default_port
    except ValueError:
        raise ConfigError(f"broker {url!r}: the port must be a number 1-65535") from None
    if not parts.hostname or parts.username or parts.path not in ("", "/"):
        raise ConfigError(f"broker {url!r}: expected mqtts://HOST:PORT (credentials go in their own options)")
    return Broker(parts.hostname, port, tls)


def from_file(path: Path) -> Answers:
    """Read a ``--from`` TOML file; relative paths are made relative to its folder."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read provisioning file: {exc}") from None
    answers = Answers()
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        for key, value in table.items():
            _apply_file_key(answers, Path(path), section, key, value)
    return answers


def _apply_file_key(answers: Answers, path: Path, section: str, key: str, value) -> None:
    if (section, key) in _SECRET_KEYS:
        answers.secrets[key if section == "mqtt" else "admin_password"] = str(value)
        return
    name = _FILE_KEYS.get((section, key))
    if name is None:
        raise ConfigError(f"{path}: unknown key [{section}] {key}")
    if name in _PATH_FIELDS:
        value = str((path.parent / str(value)).resolve())
    answers.__setattr__(name, value)


def read_secret_source(source: str, what: str) -> str:
    """Read a secret from a file path or ``-`` (first line of stdin)."""
    if source == "-":
        value = sys.stdin.readline()
    else:
        try:
            value = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the {what} from {source}: {exc.strerror}") from None
    value = value.rstrip("\r\n")
    if not value:
        raise ConfigError(f"the {what} in {source} is empty")
    return value


def ask(prompt: str, default: str | None = None) -> str:
    """Prompt on the terminal (CLI output, not logging)."""
    suffix = f" [{default}]" if default else ""
    reply = input(f"{prompt}{suffix}: ").strip()
    return reply or (default or "")


def ask_password(prompt: str, min_length: int = 0) -> str:
    """Hidden prompt, asked twice; empty means "none"."""
    while True:
        first = getpass.getpass(f"{prompt}: ")
        if not first:
            return ""
        if len(first) < min_length:
            print(f"  at least {min_length} characters, please")
            continue
        if getpass.getpass("  again: ") == first:
            return first
        print("  the two entries differ, try again")


def prompt_missing(answers: Answers, current: dict) -> None:
    """Interactively fill what a technician usually sets (current values as defaults)."""
    device = current.get("device", {})
    answers.device_id = answers.device_id or ask("Device id", device.get("id") or None)
    answers.site = answers.site or ask("Site", device.get("site"))
    answers.room = answers.room or ask("Room", device.get("room"))
    if answers.broker is None:
        answers.broker = ask("Broker URL (mqtts://host:8883, empty: none)", None) or None
    if answers.broker and answers.mqtt_username is None:
        answers.mqtt_username = ask("MQTT user name (empty: none)", answers.device_id) or None
    if answers.mqtt_username and "password" not in answers.secrets and not answers.mqtt_password_file:
        password = ask_password("MQTT password (hidden; empty: none)")
        if password:
            answers.secrets["password"] = password
    if answers.broker and answers.ca_file is None and parse_broker(answers.broker).tls:
        answers.ca_file = ask("CA certificate file (empty: system CAs)", None) or None
    if answers.roster_key is None:
        answers.roster_key = ask("Roster-signing public key file (empty: later)", None) or None
    if not answers.setup_code and "admin_password" not in answers.secrets and not answers.admin_password_file:
        password = ask_password("Console admin password (hidden; empty: print a one-time setup code)", 10)
        if password:
            answers.secrets["admin_password"] = password
        else:
            answers.setup_code = True
