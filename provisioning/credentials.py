"""Secret files written at provisioning: MQTT credentials, TLS files, console admin, HTTPS.

Secrets go into 0600 files (directory 0700), never into config.toml, never into logs. On a
device they live in ``/etc/rollcall/credentials/`` (root only) and systemd hands them to
the firmware with ``LoadCredential=`` in ``$CREDENTIALS_DIRECTORY``; the file names below
are also the credential ids used in ``systemd/rollcall-firmware.service``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import secrets
from pathlib import Path

from firmware.errors import ConfigError
from firmware.store.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

MQTT_PASSWORD = "mqtt-password"
MQTT_CA = "mqtt-ca.pem"
MQTT_CERT = "mqtt-client.pem"
MQTT_KEY = "mqtt-client.key"
ROSTER_KEY = "roster-signing.pub"

ADMIN_FILE = "admin.json"
SETUP_CODE_FILE = "setup-code"
HTTPS_CERT = "https.crt"
HTTPS_KEY = "https.key"

# No 0/O/1/I/L: a code read off a screen and typed on a phone.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def write_secret(path: Path, data: bytes, owner: tuple[int, int] | None = None) -> Path:
    """Write ``data`` atomically to ``path`` with mode 0600 (parent made 0700 if new)."""
    path = Path(path)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    atomic_write_bytes(path, data, mode=0o600)
    if owner is not None:
        os.chown(path, *owner)
    logger.info("wrote %s (0600)", path)
    return path


def check_ca(pem: bytes, source: str) -> bytes:
    """Return ``pem`` if it holds at least one X.509 certificate; else raise ConfigError."""
    from cryptography import x509

    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigError(f"{source}: not a PEM certificate (expected -----BEGIN CERTIFICATE-----)") from None
    return pem


def check_client_pair(cert_pem: bytes, key_pem: bytes, cert_source: str, key_source: str) -> None:
    """Check that the client certificate and the unencrypted private key belong together."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise ConfigError(f"{cert_source}: not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{key_source}: not an unencrypted PEM private key "
                          "(decrypt it first: openssl pkey -in KEY -out KEY.plain)") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if (cert.public_key().public_bytes(serialization.Encoding.DER, spki)
            != key.public_key().public_bytes(serialization.Encoding.DER, spki)):
        raise ConfigError(f"{key_source} is not the private key of {cert_source}")


def check_roster_key(pem: bytes, source: str) -> bytes:
    """Return ``pem`` if it is an Ed25519 public key (the central roster-signing key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ConfigError(f"{source}: not a PEM public key (make one with `rollcall central keygen`)") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{source}: the roster-signing key must be Ed25519")
    return pem


def hash_password(password: str) -> str:
    """argon2id hash (argon2-cffi PasswordHasher defaults), the console's format."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def write_admin(secrets_dir: Path, username: str, password: str,
                owner: tuple[int, int] | None = None) -> Path:
    """Store the console admin (argon2 hash) and drop any setup code.

    console/auth.py reads ``{"user", "hash"}``; ``username`` is written too, for readers
    that follow the brief's spelling.
    """
    if len(password) < 10:
        raise ConfigError("the console admin password must have at least 10 characters")
    record = {"user": username, "username": username, "hash": hash_password(password)}
    path = write_secret(Path(secrets_dir) / ADMIN_FILE, json.dumps(record).encode(), owner)
    (Path(secrets_dir) / SETUP_CODE_FILE).unlink(missing_ok=True)
    return path


def new_setup_code() -> str:
    """A one-time code like ``K7QF-3MZP-WX2D`` (12 symbols of 31: about 59 bits)."""
    chars = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return "-".join(chars[i:i + 4] for i in range(0, 12, 4))


def ensure_setup_code(secrets_dir: Path, owner: tuple[int, int] | None = None,
                      replace: bool = False) -> str | None:
    """Write a setup code unless an admin exists; return the code in force (None if admin)."""
    secrets_dir = Path(secrets_dir)
    if (secrets_dir / ADMIN_FILE).exists():
        return None
    path = secrets_dir / SETUP_CODE_FILE
    if path.exists() and not replace:
        return path.read_text(encoding="utf-8").strip()
    code = new_setup_code()
    write_secret(path, (code + "\n").encode(), owner)
    return code


def make_self_signed(secrets_dir: Path, hostname: str, owner: tuple[int, int] | None = None,
                     days: int = 3650) -> tuple[Path, Path]:
    """Make a self-signed ECDSA P-256 certificate for the console's HTTPS."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    alt: list[x509.GeneralName] = [x509.DNSName(hostname), x509.DNSName(f"{hostname}.local"),
                                   x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    key_path = write_secret(Path(secrets_dir) / HTTPS_KEY, key_pem, owner)
    cert_path = write_secret(Path(secrets_dir) / HTTPS_CERT, cert.public_bytes(serialization.Encoding.PEM), owner)
    return cert_path, key_path
