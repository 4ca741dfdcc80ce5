"""Helpers for the console's in-process WSGI tests (no tests here).

``Browser`` drives a WSGI app like a browser would: a cookie jar, form posts with the CSRF
token scraped from the last page, redirects returned (not followed) so tests can check them.
"""

from __future__ import annotations

import io
import re
import sys
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from argon2 import PasswordHasher

from tests.doubles.control import FakeDevice
from firmware.control.server import ControlServer
from firmware.store import Store

PASSWORD = "correct-horse-battery-9"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes
    parts: int = 1  # how many chunks the WSGI app yielded (a streamed body has several)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


class Browser:
    def __init__(self, app, remote_addr: str = "127.0.0.1") -> None:
        self.app = app
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self.remote_addr = remote_addr

    def request(self, method: str, path: str, body: bytes = b"", content_type: str = "",
                headers: dict | None = None) -> Reply:
        path, _, query = path.partition("?")
        env = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "SERVER_NAME": "localhost", "SERVER_PORT": "8080", "HTTP_HOST": "localhost:8080",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": self.remote_addr,
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
               "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": False,
               "wsgi.run_once": False, "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": content_type}
        if self.cookies:
            env["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for key, value in (headers or {}).items():
            env["HTTP_" + key.upper().replace("-", "_")] = value
        captured = {}

        def start_response(status, response_headers, exc_info=None):
            captured["status"], captured["headers"] = status, response_headers

        result = self.app(env, start_response)
        try:
            chunks = [chunk for chunk in result if chunk]
        finally:
            if hasattr(result, "close"):
                result.close()
        data = b"".join(chunks)
        reply_headers = {}
        for key, value in captured["headers"]:
            if key.lower() == "set-cookie":
                cookie = SimpleCookie(value)
                for name, morsel in cookie.items():
                    if morsel["max-age"] == "-1" or morsel.value == "":
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
                reply_headers.setdefault("Set-Cookie", []).append(value)
            else:
                reply_headers[key] = value
        reply = Reply(int(captured["status"].split()[0]), reply_headers, data, len(chunks))
        found = CSRF_RE.search(reply.text) if "html" in reply_headers.get("Content-Type", "") else None
        if found:
            self.csrf = found.group(1)
        return reply

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, data: dict | list | None = None, csrf: bool = True, **kw) -> Reply:
        fields = list(data.items()) if isinstance(data, dict) else list(data or [])
        if csrf:
            fields.append(("csrf", self.csrf))
        return self.request("POST", path, urlencode(fields).encode(),
                            "application/x-www-form-urlencoded", **kw)

    def follow(self, reply: Reply) -> Reply:
        """GET the redirect target of ``reply`` (as a browser does after a POST); a reply
        that is not a redirect is returned as it is."""
        if reply.status not in (301, 302, 303, 307) or not reply.location:
            return reply
        parts = urlsplit(reply.location)
        return self.get(parts.path + ("?" + parts.query if parts.query else ""))

    def post_files(self, path: str, files: list[tuple[str, str, bytes]], fields: dict | None = None,
                   headers: dict | None = None) -> Reply:
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in {"csrf": self.csrf, **(fields or {})}.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                         f"{value}\r\n".encode())
        for field, filename, data in files:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; '
                         f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                         .encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("POST", path, body, f"multipart/form-data; boundary={boundary}",
                            headers=headers)


def write_config(root: Path, socket_path: Path, extra: str = "") -> Path:
    config = root / "config.toml"
    config.write_text(f'[paths]\ncontrol_socket = "{socket_path}"\nlog_dir = "{root}/log"\n'
                      f'data_dir = "{root}/data"\n[console]\nsecrets_dir = "{root}/secrets"\n{extra}')
    return config


@dataclass
class ConsoleEnv:
    root: Path
    config: Path
    store: Store
    device: FakeDevice
    server: ControlServer
    app: object

    def browser(self, remote_addr: str = "127.0.0.1") -> Browser:
        return Browser(self.app, remote_addr)

    def close(self) -> None:
        """Stop the control server, close the store and remove the folder; safe twice."""
        try:
            self.server.close()
            self.store.close()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def make_env(firmware: bool = True, jpeg: bytes | None = None, extra: str = "") -> ConsoleEnv:
    """A console app over a real ControlServer + Store in a fresh /tmp/rc-console-* folder
    (short: the control socket path must fit AF_UNIX's 108 bytes). The caller must
    ``close()`` it, which removes the folder; the ``console_env`` fixture does."""
    from console.app import create_app

    root = Path(tempfile.mkdtemp(prefix="rc-console-"))
    store = server = None
    try:
        socket_path = root / "control.sock"
        store = Store(root / "data")
        device = FakeDevice(store, jpeg=jpeg)
        server = ControlServer(socket_path, store, device)
        if firmware:
            server.start()
        config = write_config(root, socket_path, extra)
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # argon2id, fast for tests
        return ConsoleEnv(root, config, store, device, server, create_app(config, password_hasher=cheap))
    except BaseException:
        for part in (server, store):
            if part is not None:
                part.close()
        shutil.rmtree(root, ignore_errors=True)
        raise


@pytest.fixture
def console_env():
    env = make_env()
    try:
        yield env
    finally:
        env.close()


def setup_admin(browser: Browser, password: str = PASSWORD) -> Reply:
    browser.get("/setup")
    reply = browser.post("/setup", {"user": "admin", "password": password, "password2": password})
    if reply.status == 303:
        browser.get("/setup/device")  # follow the redirect like a browser (new session token)
    return reply


@pytest.fixture
def admin(console_env) -> Browser:
    """A browser logged in as the admin (created through the first-run form)."""
    browser = console_env.browser()
    reply = setup_admin(browser)
    assert reply.status in (302, 303) and reply.location.endswith("/setup/device")
    assert browser.get("/setup/device").status == 200  # follow the redirect: new CSRF token
    return browser


def bulk_job_of(browser: Browser, reply: Reply):
    """The console's bulk job a bulk upload's 303 points at (``/people/bulk/<id>``)."""
    assert reply.status == 303 and "/people/bulk/" in reply.location, (reply.status, reply.text[:300])
    job = browser.app.config["rollcall.ctx"].bulk.get(reply.location.rstrip("/").rsplit("/", 1)[1])
    assert job is not None, reply.location
    return job


def finished_bulk(browser: Browser, reply: Reply, timeout: float = 30) -> Reply:
    """A bulk upload's answer: a refusal as it is; a started job: its page once the job
    has ended (waiting on the job, at most ``timeout`` seconds)."""
    if reply.status != 303:
        return reply
    job = bulk_job_of(browser, reply)
    assert job.wait(timeout), f"the bulk job did not end within {timeout} s ({job.snapshot()['done']} rows done)"
    return browser.follow(reply)
