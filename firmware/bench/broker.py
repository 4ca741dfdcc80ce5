"""A real mosquitto broker on a free loopback port, for tests and benchmarks.

Started and stopped by its owner (a context manager; ``stop()`` is safe twice). Optionally
a TLS listener (``tls=(cafile, certfile, keyfile)``) and password auth
(``password_file=`` made with :func:`write_password_file`).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

logger = logging.getLogger(__name__)


class BrokerUnavailable(RuntimeError):
    """mosquitto is not installed (apt-get install mosquitto)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def mosquitto_binary() -> Path:
    """Path of the mosquitto binary; raise BrokerUnavailable when it is not installed."""
    binary = Path(shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    if not binary.exists():
        raise BrokerUnavailable("mosquitto is not installed (apt-get install mosquitto)")
    return binary


def write_password_file(path: Path, users: dict[str, str]) -> Path:
    """Write a mosquitto password file (hashed by ``mosquitto_passwd``) for ``users``."""
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    path = Path(path)
    path.write_text("")
    path.chmod(0o600)
    for user, password in users.items():
        subprocess.run([tool, "-b", str(path), user, password], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


class Mosquitto:
    """A real mosquitto broker on a free loopback port, started and stopped by its owner."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "",
                 tls: tuple[Path, Path, Path] | None = None, password_file: Path | None = None):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.extra_conf = extra_conf
        self.tls = tls
        self.password_file = password_file
        self.proc: subprocess.Popen | None = None

    def _conf_text(self) -> str:
        lines = [f"listener {self.port} 127.0.0.1"]
        if self.tls:
            cafile, certfile, keyfile = self.tls
            lines += [f"cafile {cafile}", f"certfile {certfile}", f"keyfile {keyfile}"]
        if self.password_file:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if os.geteuid() == 0:  # as root mosquitto switches to user "mosquitto", who cannot write here
            lines.append("user root")
        lines += ["persistence true", f"persistence_location {self.workdir}/",
                  "max_queued_messages 100000", self.extra_conf]
        return "\n".join(lines) + "\n"

    def start(self) -> "Mosquitto":
        """Start the broker and wait (up to 10 s) until its port accepts connections."""
        binary = mosquitto_binary()
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self._conf_text())
        with open(self.workdir / "mosquitto.log", "ab") as log:
            self.proc = subprocess.Popen([str(binary), "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not start on port {self.port}; see {self.workdir}/mosquitto.log")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s); safe to call twice."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_text(self) -> str:
        """The broker's own log so far (for assertions and failure messages)."""
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _certificate(subject: str, issuer: str, public_key, signer, ca: bool, san: list | None = None):
    """One X.509 certificate valid for two days (test material only)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_tls_material(directory: Path, host: str = "127.0.0.1") -> dict[str, Path]:
    """A throw-away CA, a broker certificate for ``host`` signed by it, and an unrelated CA.

    Returns paths: ``ca``, ``cert``, ``key`` (broker, 0600), ``wrong_ca``. For tests only.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, wrong_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    san = [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
    certs = {"ca": _certificate("Rollcall test CA", "Rollcall test CA", ca_key.public_key(), ca_key, True),
             "wrong_ca": _certificate("Other CA", "Other CA", wrong_key.public_key(), wrong_key, True),
             "cert": _certificate(host, "Rollcall test CA", key.public_key(), ca_key, False, san)}
    paths = {name: directory / f"{name}.pem" for name in certs}
    for name, cert in certs.items():
        paths[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"] = directory / "broker.key"
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    paths["key"].chmod(0o600)
    return paths


class Watcher:
    """A plain MQTT subscriber that records every message (topic, payload, retain) it sees."""

    def __init__(self, port: int, topics: list[str], host: str = "127.0.0.1", client_id: str = "watcher",
                 tls_ca: Path | None = None, username: str = "", password: str = "") -> None:
        import threading

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if tls_ca:
            self.client.tls_set(ca_certs=str(tls_ca))
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe([(t, 1) for t in topics]), None)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("watcher could not subscribe")

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def json(self, suffix: str) -> list[dict]:
        """Decoded JSON payloads of messages whose topic ends with ``suffix``."""
        import json

        with self._lock:
            return [json.loads(p) for t, p, _ in self.messages if t.endswith(suffix) and p]

    def wait_for(self, suffix: str, predicate=lambda m: True, timeout: float = 10.0, skip: int = 0) -> dict:
        """The first JSON message on ``*suffix`` (after the first ``skip``) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.json(suffix)[skip:]:
                if predicate(message):
                    return message
            time.sleep(0.05)
        raise TimeoutError(f"no message on *{suffix} matched within {timeout} s; got {self.json(suffix)[-3:]}")

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        """Disconnect; safe twice."""
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()
            self.client = None
