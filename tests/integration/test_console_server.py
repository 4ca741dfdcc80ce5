"""The console served for real: `rollcall console` as a process (firmware down), and the
HTTPS option with cheroot's builtin TLS adapter and a certificate like provisioning makes."""

from __future__ import annotations

import datetime as dt
import http.client
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.integration


def _config(tmp: Path, extra: str = "") -> Path:
    path = tmp / "config.toml"
    path.write_text(f'[paths]\ncontrol_socket = "{tmp}/control.sock"\nlog_dir = "{tmp}/log"\n'
                    f'data_dir = "{tmp}/data"\n[console]\nsecrets_dir = "{tmp}/secrets"\n{extra}')
    return path


def _wait_port(port: int, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"console exited early: {proc.stdout.read().decode()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("console did not listen")


def test_console_process_without_firmware_shows_banner_and_stops_cleanly(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "firmware.cli", "console", "--config",
                             str(_config(tmp_path)), "--bind", "127.0.0.1", "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 303 and resp.getheader("Location").endswith("/setup")
        conn.request("GET", "/setup")
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200 and "Firmware not running" in body and "no control socket" in body
        assert "Secure" not in resp.getheader("Set-Cookie")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rollcall.local")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / "console.crt", tmp / "console.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return cert_file, key_file


def test_https_option_sets_secure_cookie_and_hsts(tmp_path):
    from console.app import create_app
    from console.server import make_server
    from firmware.config import load_config

    cert, key = _self_signed(tmp_path)
    path = _config(tmp_path, f'https = true\ncert_file = "{cert}"\nkey_file = "{key}"\n')
    config = load_config(path)
    port = free_port()
    server = make_server(create_app(path), "127.0.0.1", port, config)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
        conn.request("GET", "/setup")
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200 and "Create admin account" in body
        cookie = resp.getheader("Set-Cookie")
        assert "Secure" in cookie and "HttpOnly" in cookie
        assert resp.getheader("Strict-Transport-Security") == "max-age=31536000"
    finally:
        server.stop()
        thread.join(5)
