"""`rollcall provision` end to end: real files, real modes, real argon2, real PEM checks.

Runs the installed `rollcall` command in a subprocess (no TTY, so never prompts).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from console.users import Users
from firmware.config import load_config

pytestmark = pytest.mark.integration

ROLLCALL = Path(sys.prefix) / "bin" / "rollcall"
MQTT_PASSWORD = "mqtt-Secret-0042"
ADMIN_PASSWORD = "console-Secret-0042"


def _cert(subject: str, key, issuer_key=None, issuer: str | None = None, ca: bool = False) -> bytes:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or subject)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    return builder.sign(issuer_key or key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture
def pki(tmp_path) -> dict[str, Path]:
    """A CA, a client cert+key it signed, an Ed25519 roster key, and a wrong (RSA) key."""
    ca_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    files = {
        "ca": _cert("Test CA", ca_key, ca=True),
        "client_cert": _cert("door-12", client_key, ca_key, "Test CA"),
        "client_key": _key_pem(client_key),
        "other_key": _key_pem(ec.generate_private_key(ec.SECP256R1())),
        "roster": ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "rsa_pub": rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "mqtt_pw": (MQTT_PASSWORD + "\n").encode(),
        "admin_pw": (ADMIN_PASSWORD + "\n").encode(),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = tmp_path / "in" / name
        paths[name].parent.mkdir(exist_ok=True)
        paths[name].write_bytes(content)
    return paths


def provision(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("ROLLCALL_CONFIG", None)
    cmd = [str(ROLLCALL), "provision", "--config", str(tmp_path / "etc/config.toml"),
           "--secrets-dir", str(tmp_path / "console"), "--no-restart", "--non-interactive", *args]
    return subprocess.run(cmd, capture_output=True, text=True, input=stdin, env=env, timeout=120, check=False)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_full_provisioning(tmp_path, pki):
    result = provision(
        tmp_path, "--device-id", "door-12", "--site", "north", "--room", "hall-b",
        "--timezone", "Europe/London", "--broker", "mqtts://broker.example.org:8883",
        "--mqtt-username", "door-12", "--mqtt-password-file", str(pki["mqtt_pw"]),
        "--ca-file", str(pki["ca"]), "--client-cert", str(pki["client_cert"]),
        "--client-key", str(pki["client_key"]), "--roster-public-key", str(pki["roster"]),
        "--admin-user", "chief", "--admin-password-file", str(pki["admin_pw"]), "--https")
    assert result.returncode == 0, result.stderr
    creds = tmp_path / "etc/credentials"
    config = load_config(tmp_path / "etc/config.toml")
    assert (config.device.id, config.device.site, config.device.room) == ("door-12", "north", "hall-b")
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("broker.example.org", 8883, True)
    assert config.mqtt.password_file == creds / "mqtt-password"
    assert config.mqtt.key_file == creds / "mqtt-client.key"
    assert config.mqtt.roster_public_key_file == creds / "roster-signing.pub"
    assert config.console.https and config.console.cert_file == tmp_path / "console/https.crt"
    assert (creds / "mqtt-password").read_text() == MQTT_PASSWORD
    assert (creds / "mqtt-client.key").read_bytes() == pki["client_key"].read_bytes()
    assert mode(creds) == 0o700 and mode(tmp_path / "etc/config.toml") == 0o640
    for path in [*creds.iterdir(), *(tmp_path / "console").iterdir()]:
        assert mode(path) == 0o600, path
    admin = json.loads((tmp_path / "console/admin.json").read_text())
    assert admin["user"] == admin["username"] == "chief" and admin["hash"].startswith("$argon2id$")
    assert PasswordHasher().verify(admin["hash"], ADMIN_PASSWORD)
    users = Users(tmp_path / "console")  # the console's own reader accepts what provisioning wrote
    assert users.verify("chief", ADMIN_PASSWORD) == "admin" and not users.verify("chief", "wrong-password")
    cert = x509.load_pem_x509_certificate((tmp_path / "console/https.crt").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "door-12"
    everything = (tmp_path / "etc/config.toml").read_text() + result.stdout + result.stderr
    assert MQTT_PASSWORD not in everything and ADMIN_PASSWORD not in everything


def test_from_file_for_a_fleet(tmp_path, pki):
    fleet = tmp_path / "in" / "door-7.toml"
    fleet.write_text(f'[device]\nid = "door-7"\nroom = "lab"\n'
                     f'[mqtt]\nbroker = "mqtt://10.1.2.3"\nusername = "door-7"\n'
                     f'password_file = "{pki["mqtt_pw"].name}"\n'
                     f'[console]\nsetup_code = true\n')
    result = provision(tmp_path, "--from", str(fleet), "--site", "south")
    assert result.returncode == 0, result.stderr
    config = load_config(tmp_path / "etc/config.toml")
    assert (config.device.id, config.device.site, config.device.room) == ("door-7", "south", "lab")
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == ("10.1.2.3", 1883, False)
    code = (tmp_path / "console/setup-code").read_text().strip()
    assert code in result.stdout and len(code) == 14
    assert not (tmp_path / "console/admin.json").exists()


def test_setup_code_until_a_password_is_set(tmp_path, pki):
    first = provision(tmp_path, "--ensure-setup-code")
    code = (tmp_path / "console/setup-code").read_text().strip()
    assert first.returncode == 0 and code in first.stdout
    assert Users(tmp_path / "console").setup_code() == code  # the console reads the same file
    again = provision(tmp_path, "--ensure-setup-code")
    assert (tmp_path / "console/setup-code").read_text().strip() == code and code in again.stdout
    result = provision(tmp_path, "--admin-password-file", "-", stdin=ADMIN_PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "console/setup-code").exists()
    assert (tmp_path / "console/admin.json").exists()
    after = provision(tmp_path, "--ensure-setup-code")
    assert after.stdout == "" and not (tmp_path / "console/setup-code").exists()


@pytest.mark.parametrize("args, message", [
    (["--roster-public-key", "rsa_pub"], "roster-signing key must be Ed25519"),
    (["--ca-file", "client_key"], "not a PEM certificate"),
    (["--client-cert", "client_cert", "--client-key", "other_key"], "is not the private key of"),
    (["--client-cert", "client_cert"], "needs both --client-cert and --client-key"),
    (["--broker", "http://x"], "scheme must be mqtt:// or mqtts://"),
    (["--device-id", "bad id!"], "device.id"),
])
def test_bad_input_is_explained_and_changes_nothing(tmp_path, pki, args, message):
    assert provision(tmp_path, "--device-id", "door-1").returncode == 0
    before = (tmp_path / "etc/config.toml").read_bytes()
    args = [str(pki[a]) if a in pki else a for a in args]
    result = provision(tmp_path, *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert (tmp_path / "etc/config.toml").read_bytes() == before
    assert not (tmp_path / "etc/credentials").exists()


def test_short_admin_password_is_refused(tmp_path):
    result = provision(tmp_path, "--admin-password-file", "-", stdin="short\n")
    assert result.returncode == 2 and "at least 10 characters" in result.stderr
    assert not (tmp_path / "console/admin.json").exists()


def test_first_boot_of_a_clone_gets_its_own_setup_code(tmp_path):
    """What rollcall-firstboot.service runs: --from the boot partition file, --setup-code."""
    assert provision(tmp_path, "--ensure-setup-code").returncode == 0
    cloned = (tmp_path / "console/setup-code").read_text()
    answers = tmp_path / "boot/rollcall.toml"
    answers.parent.mkdir()
    answers.write_text('[device]\nid = "door-31"\nsite = "east"\n')
    result = provision(tmp_path, "--from", str(answers), "--setup-code")
    assert result.returncode == 0, result.stderr
    fresh = (tmp_path / "console/setup-code").read_text()
    assert fresh != cloned and fresh.strip() in result.stdout
    assert load_config(tmp_path / "etc/config.toml").device.id == "door-31"


def test_interactive_prompts_on_a_terminal(tmp_path):
    """On a TTY the missing answers are asked; passwords are hidden and asked twice."""
    import pty
    import select
    import time

    script = [("Device id", "door-5"), ("Site", "west"), ("Room", "gym"),
              ("Broker URL", "mqtts://broker.lan"), ("MQTT user name", ""),
              ("MQTT password", MQTT_PASSWORD), ("again", MQTT_PASSWORD),
              ("CA certificate file", ""), ("Roster-signing public key file", ""),
              ("Console admin password", ADMIN_PASSWORD), ("again", ADMIN_PASSWORD)]
    pid, fd = pty.fork()
    if pid == 0:  # child: the real command on the pty
        os.execv(str(ROLLCALL), [str(ROLLCALL), "-q", "provision", "--config", str(tmp_path / "etc/config.toml"),
                                 "--secrets-dir", str(tmp_path / "console"), "--no-restart"])
    seen, deadline = b"", time.monotonic() + 60
    try:
        for prompt, reply in script:
            while prompt.encode() not in seen and time.monotonic() < deadline:
                if select.select([fd], [], [], 1)[0]:
                    seen += os.read(fd, 4096)
            assert prompt.encode() in seen, seen.decode(errors="replace")
            seen = seen[seen.index(prompt.encode()) + len(prompt):]
            os.write(fd, reply.encode() + b"\n")
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen.decode(errors="replace")
    config = load_config(tmp_path / "etc/config.toml")
    assert (config.device.id, config.device.site, config.device.room) == ("door-5", "west", "gym")
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.username) == ("broker.lan", 8883, "door-5")
    assert (tmp_path / "etc/credentials/mqtt-password").read_text() == MQTT_PASSWORD
    assert PasswordHasher().verify(json.loads((tmp_path / "console/admin.json").read_text())["hash"],
                                   ADMIN_PASSWORD)
    assert MQTT_PASSWORD.encode() not in seen and ADMIN_PASSWORD.encode() not in seen  # not echoed
