"""`rollcall provision`: device identity, broker, credentials/TLS, console admin, roster key.

Non-interactive with flags or ``--from FILE`` (TOML, for provisioning many devices);
prompts on a TTY for what is still missing. Secrets are written 0600 into the credentials
directory (default: ``credentials/`` beside the config file, i.e. /etc/rollcall/credentials
on a device, root only; systemd hands them to the firmware) and only referenced from
config.toml, which is validated with the firmware's schema and written atomically.
The console admin is stored as an argon2 hash in ``<console.secrets_dir>/admin.json``;
without a password a one-time setup code is written to ``<secrets_dir>/setup-code``.
"""

from __future__ import annotations

import argparse
import logging
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from firmware.config import (Config, config_path, load_config, machine_device_id, parse_config,
                             write_config_atomic)
from firmware.errors import ConfigError
from provisioning import credentials as cr
from provisioning.answers import Answers, from_file, parse_broker, prompt_missing, read_secret_source

logger = logging.getLogger(__name__)

CONSOLE_USER = "rollcall-console"
UNITS = ("rollcall-firmware.service", "rollcall-console.service")


def register(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the `rollcall provision` options."""
    add = parser.add_argument
    add("--config", help="config file (default: $ROLLCALL_CONFIG or /etc/rollcall/config.toml)")
    add("--from", dest="from_file", metavar="FILE", help="answers from a TOML file (see docs)")
    add("--credentials-dir", help="where secrets go (default: credentials/ beside the config)")
    add("--secrets-dir", help="console secrets dir (default: console.secrets_dir from the config)")
    add("--device-id"), add("--name"), add("--site"), add("--room"), add("--timezone")
    add("--broker", metavar="URL", help="mqtt://host[:port] or mqtts://host[:port] (TLS)")
    add("--mqtt-username")
    add("--mqtt-password-file", metavar="FILE", help="file holding the MQTT password ('-': stdin)")
    add("--ca-file", help="CA certificate (PEM) of the broker")
    add("--client-cert", help="client certificate (PEM) for mutual TLS")
    add("--client-key", help="client private key (PEM, unencrypted) for mutual TLS")
    add("--admin-user", dest="admin_username", help="console admin user name (default admin)")
    add("--admin-password-file", metavar="FILE", help="file holding the console password ('-': stdin)")
    add("--setup-code", action="store_const", const=True, help="print a one-time console setup code")
    add("--https", action=argparse.BooleanOptionalAction, help="console HTTPS with a self-signed cert")
    add("--console-port", type=int)
    add("--roster-public-key", dest="roster_key", metavar="FILE", help="central roster-signing key (PEM)")
    add("--non-interactive", action="store_true", help="never prompt (default when stdin is not a TTY)")
    add("--ensure-setup-code", action="store_true",
        help="only write a setup code if there is no admin yet (used by install.sh)")
    add("--no-chown", action="store_true", help="do not hand console files to the console user")
    add("--no-restart", action="store_true", help="do not restart the services")
    parser.set_defaults(func=run)


def _answers_from_args(args: argparse.Namespace) -> Answers:
    names = [n for n in Answers.__dataclass_fields__ if n != "secrets"]
    return Answers(**{n: getattr(args, n, None) for n in names})


def _owner(args: argparse.Namespace, user: str) -> tuple[int, int] | None:
    if args.no_chown or os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _read_pem(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from None


def collect(args: argparse.Namespace, current: dict) -> Answers:
    """Merge flags, the --from file and (on a TTY) prompts; read the secret files."""
    answers = _answers_from_args(args)
    if args.from_file:
        answers.merge(from_file(Path(args.from_file)))
    if not args.non_interactive and sys.stdin.isatty():
        prompt_missing(answers, current)
    if answers.mqtt_password_file and "password" not in answers.secrets:
        answers.secrets["password"] = read_secret_source(answers.mqtt_password_file, "MQTT password")
    if answers.admin_password_file and "admin_password" not in answers.secrets:
        answers.secrets["admin_password"] = read_secret_source(answers.admin_password_file, "console password")
    return answers


def plan_secrets(answers: Answers) -> dict[str, bytes]:
    """Validate every secret or TLS file and return {credential file name: content}."""
    files: dict[str, bytes] = {}
    if len(answers.secrets.get("admin_password", "x" * 10)) < 10:
        raise ConfigError("the console admin password must have at least 10 characters")
    if "password" in answers.secrets:
        files[cr.MQTT_PASSWORD] = answers.secrets["password"].encode()
    if answers.ca_file:
        files[cr.MQTT_CA] = cr.check_ca(_read_pem(answers.ca_file, "CA file"), answers.ca_file)
    if bool(answers.client_cert) != bool(answers.client_key):
        raise ConfigError("mutual TLS needs both --client-cert and --client-key")
    if answers.client_cert:
        cert, key = _read_pem(answers.client_cert, "client certificate"), _read_pem(answers.client_key, "client key")
        cr.check_client_pair(cert, key, answers.client_cert, answers.client_key)
        files[cr.MQTT_CERT], files[cr.MQTT_KEY] = cert, key
    if answers.roster_key:
        files[cr.ROSTER_KEY] = cr.check_roster_key(_read_pem(answers.roster_key, "roster key"), answers.roster_key)
    return files


def apply(config: Config, answers: Answers, secret_files: dict[str, bytes], creds_dir: Path,
          secrets_dir: Path) -> Config:
    """Return a validated Config with the answers applied (secrets only by reference)."""
    data = config.model_dump(mode="json", exclude_none=True)
    device, mqtt, console = data["device"], data["mqtt"], data["console"]
    for key, value in (("id", answers.device_id), ("name", answers.name), ("site", answers.site),
                       ("room", answers.room), ("timezone", answers.timezone)):
        if value is not None:
            device[key] = value
    if answers.broker:
        broker = parse_broker(answers.broker)
        mqtt.update(enabled=True, host=broker.host, port=broker.port, tls=broker.tls)
    if answers.mqtt_username is not None:
        mqtt["username"] = answers.mqtt_username
    refs = {cr.MQTT_PASSWORD: "password_file", cr.MQTT_CA: "ca_file", cr.MQTT_CERT: "cert_file",
            cr.MQTT_KEY: "key_file", cr.ROSTER_KEY: "roster_public_key_file"}
    for name in secret_files:
        mqtt[refs[name]] = str(creds_dir / name)
    if answers.https is not None:
        console["https"] = answers.https
        if answers.https:
            console["cert_file"] = str(secrets_dir / cr.HTTPS_CERT)
            console["key_file"] = str(secrets_dir / cr.HTTPS_KEY)
    if answers.console_port is not None:
        console["port"] = answers.console_port
    return parse_config(data, "provisioned config")


def _write_config(config: Config, path: Path) -> None:
    """Atomic write that keeps the file's owner and group (the console must still own it)."""
    before = path.stat() if path.exists() else None
    write_config_atomic(config, path)
    if before is not None and os.geteuid() == 0:
        os.chown(path, before.st_uid, before.st_gid)
    logger.info("wrote %s", path)


def _console_secrets(args, answers: Answers, secrets_dir: Path, console_owner) -> str | None:
    """Admin password, setup code and HTTPS cert; returns a new setup code to show."""
    if "admin_password" in answers.secrets:
        cr.write_admin(secrets_dir, answers.admin_username or "admin", answers.secrets["admin_password"],
                       console_owner)
        print(f"console admin '{answers.admin_username or 'admin'}' set")
        code = None
    elif (secrets_dir / cr.ADMIN_FILE).exists():
        if answers.setup_code:
            print("a console admin already exists: no setup code made "
                  f"(delete {secrets_dir / cr.ADMIN_FILE} to reset)")
        code = None
    else:
        code = cr.ensure_setup_code(secrets_dir, console_owner, replace=bool(answers.setup_code))
    if answers.https and not (secrets_dir / cr.HTTPS_CERT).exists():
        cr.make_self_signed(secrets_dir, answers.device_id or socket.gethostname(), console_owner)
        print(f"self-signed HTTPS certificate written to {secrets_dir / cr.HTTPS_CERT}")
    return code


def _restart(args: argparse.Namespace) -> None:
    if args.no_restart or os.geteuid() != 0 or not Path("/run/systemd/system").is_dir():
        return
    if shutil.which("systemctl") is None:
        return
    result = subprocess.run(["systemctl", "try-restart", *UNITS], check=False)
    if result.returncode == 0:
        print("services restarted")


def ensure_setup_code_only(args: argparse.Namespace, config: Config, path: Path) -> int:
    """install.sh hook: a device id made from the machine id when there is none, and a
    setup code unless an admin exists; prints both."""
    if not config.device.id:
        config.device.id = machine_device_id()
        _write_config(config, path)
        print(f"device id {config.device.id} (made from this machine's id; change it in the "
              "console's Device setup or with `rollcall provision --device-id`)")
    secrets_dir = Path(args.secrets_dir or config.console.secrets_dir)
    code = cr.ensure_setup_code(secrets_dir, _owner(args, CONSOLE_USER))
    if code:
        print(f"console setup code: {code}  (also in {secrets_dir / cr.SETUP_CODE_FILE})")
    return 0


def run(args: argparse.Namespace) -> int:
    """Entry point of `rollcall provision`."""
    path = config_path(args.config)
    config = load_config(path)
    if args.ensure_setup_code:
        return ensure_setup_code_only(args, config, path)
    creds_dir = Path(args.credentials_dir) if args.credentials_dir else path.parent / "credentials"
    secrets_dir = Path(args.secrets_dir or config.console.secrets_dir)
    answers = collect(args, config.model_dump(mode="json"))
    secret_files = plan_secrets(answers)
    new_config = apply(config, answers, secret_files, creds_dir, secrets_dir)
    for name, content in secret_files.items():
        cr.write_secret(creds_dir / name, content)
    code = _console_secrets(args, answers, secrets_dir, _owner(args, CONSOLE_USER))
    _write_config(new_config, path)
    print(f"provisioned {new_config.device.id or '(no device id)'} "
          f"site={new_config.device.site} room={new_config.device.room} -> {path}")
    if new_config.mqtt.host:
        scheme = "mqtts" if new_config.mqtt.tls else "mqtt"
        print(f"broker: {scheme}://{new_config.mqtt.host}:{new_config.mqtt.port}")
    else:
        print("broker: not configured (the device records locally until one is set)")
    if code:
        print(f"console setup code: {code}  (enter it on the console's first page)")
    _restart(args)
    return 0
