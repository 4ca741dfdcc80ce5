"""Console security over in-process WSGI: setup, login, CSRF, fixation, lockout, uploads, XSS,
headers. The firmware side is a real ControlServer on a Unix socket with in-memory fakes."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from console.auth import LoginLimiter, password_problem
from tests.unit.test_console_support import (PASSWORD, admin, console_env,  # noqa: F401
                                             make_env, setup_admin)


def jpeg(width=320, height=240, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + b"\x00" * 64)


def test_every_page_needs_setup_then_login(console_env):
    browser = console_env.browser()
    assert browser.get("/people").location.endswith("/setup")
    setup_admin(browser)
    fresh = console_env.browser()
    reply = fresh.get("/people?q=x")
    assert reply.status in (302, 303) and "/login?next=/people%3Fq%3Dx" in reply.location
    assert fresh.get("/api/status").status == 401
    assert fresh.get("/setup").location.endswith("/login")  # setup closes once an admin exists


def test_weak_passwords_rejected():
    assert password_problem("short") is not None
    assert password_problem("password1234") is not None
    assert password_problem("aaaaaaaaaaaaaa") is not None
    assert password_problem("admin-is-my-pass", "admin") is not None
    assert password_problem(PASSWORD) is None


def test_setup_rejects_weak_password_and_stores_argon2_hash_0600(console_env):
    browser = console_env.browser()
    browser.get("/setup")
    reply = browser.post("/setup", {"user": "admin", "password": "password1234",
                                    "password2": "password1234"})
    assert reply.status == 400 and "too common" in reply.text
    assert not (console_env.root / "secrets" / "admin.json").exists()
    setup_admin(browser)
    path = console_env.root / "secrets" / "admin.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert "$argon2" in path.read_text() and PASSWORD not in path.read_text()
    assert (console_env.root / "secrets" / "session-key").stat().st_mode & 0o777 == 0o600


def test_setup_code_required_when_provisioned(console_env):
    (console_env.root / "secrets" / "setup-code").write_text("4242-7777\n")
    browser = console_env.browser()
    assert "Setup code" in browser.get("/setup").text
    reply = browser.post("/setup", {"user": "admin", "password": PASSWORD, "password2": PASSWORD,
                                    "setup_code": "0000"})
    assert reply.status == 400 and "wrong setup code" in reply.text
    for _ in range(4):
        browser.post("/setup", {"user": "admin", "password": PASSWORD, "password2": PASSWORD,
                                "setup_code": "1111"})
    locked = browser.post("/setup", {"user": "admin", "password": PASSWORD, "password2": PASSWORD,
                                     "setup_code": "4242-7777"})
    assert locked.status == 429  # guessing the code is rate-limited like logins
    console_env.app.config["rollcall.ctx"].limiter.succeeded("127.0.0.1")
    reply = browser.post("/setup", {"user": "admin", "password": PASSWORD, "password2": PASSWORD,
                                    "setup_code": "4242-7777"})
    assert reply.status == 303
    assert not (console_env.root / "secrets" / "setup-code").exists()


def test_csrf_missing_or_wrong_is_refused(admin, console_env):
    assert admin.post("/people", {"name": "Mallory"}, csrf=False).status == 403
    assert admin.post("/people", [("name", "Mallory"), ("csrf", "x" * 43)], csrf=False).status == 403
    assert console_env.store.people.list() == []
    assert admin.post("/people", {"name": "Alice", "basis": "consent"}).status == 303
    assert [p["name"] for p in console_env.store.people.list()] == ["Alice"]


def test_csrf_token_of_another_session_is_refused(admin, console_env):
    other = console_env.browser()
    other.get("/login")
    stolen = other.csrf
    reply = admin.post("/people", [("name", "Eve"), ("csrf", stolen)], csrf=False)
    assert reply.status == 403


def test_login_rotates_session_id_and_cookie_flags(console_env):
    setup_admin(console_env.browser())
    browser = console_env.browser()
    reply = browser.get("/login")
    cookie = reply.headers["Set-Cookie"][0]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "rc_session" not in browser.cookies  # anonymous: no server-side session at all
    before = browser.cookies["rc_pre"]
    reply = browser.post("/login", {"user": "admin", "password": PASSWORD, "next": "/people"})
    assert reply.status == 303 and reply.location.endswith("/people")
    after = browser.cookies["rc_session"]
    assert after != before
    attacker = console_env.browser()
    attacker.cookies["rc_session"] = before  # a fixated id must not become logged in
    assert attacker.get("/people").status in (302, 303)
    assert browser.get("/people").status == 200


def test_login_open_redirect_refused(console_env):
    setup_admin(console_env.browser())
    browser = console_env.browser()
    browser.get("/login")
    reply = browser.post("/login", {"user": "admin", "password": PASSWORD,
                                    "next": "//evil.example/"})
    assert reply.location == "http://localhost:8080/"


def test_brute_force_lockout_with_backoff(console_env):
    setup_admin(console_env.browser())
    browser = console_env.browser(remote_addr="10.0.0.9")
    browser.get("/login")
    for _ in range(5):
        assert browser.post("/login", {"user": "admin", "password": "wrong-password-1"}).status == 401
    reply = browser.post("/login", {"user": "admin", "password": PASSWORD})
    assert reply.status == 429 and "too many failed attempts" in reply.text
    other = console_env.browser(remote_addr="10.0.0.10")
    other.get("/login")
    assert other.post("/login", {"user": "admin", "password": PASSWORD}).status == 303


def test_limiter_backoff_doubles_and_resets():
    now = [0.0]
    limiter = LoginLimiter(clock=lambda: now[0], free=5, base_s=30, max_s=900)
    for _ in range(5):
        limiter.failed("c")
    assert limiter.wait_s("c") == 30
    now[0] = 31
    assert limiter.wait_s("c") == 0
    limiter.failed("c")
    assert limiter.wait_s("c") == 60
    limiter.succeeded("c")
    assert limiter.wait_s("c") == 0


def test_security_headers(admin):
    reply = admin.get("/people")
    csp = reply.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in reply.text and "onclick" not in reply.text


def test_xss_in_names_is_escaped(admin, console_env):
    evil = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    assert admin.post("/people", {"name": evil, "basis": "consent"}).status == 303
    page = admin.get("/people").text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page


def _person(admin, console_env) -> str:
    admin.post("/people", {"name": "Bob", "basis": "consent"})
    return console_env.store.people.list()[0]["id"]


def test_upload_valid_photo_is_reencoded_and_enrolled(admin, console_env):
    pid = _person(admin, console_env)
    admin.get(f"/people/{pid}")
    original = jpeg(seed=1)
    reply = admin.post_files(f"/people/{pid}/photos", [("photos", "../../etc/passwd.jpg", original)])
    assert reply.status == 303 and reply.location.endswith(f"/people/{pid}#results")  # POST-redirect-GET
    reply = admin.follow(reply)
    assert reply.status == 200 and "accepted" in reply.text and "passwd.jpg" in reply.text
    assert console_env.device.calls[-1] == ("enrol", pid, 1)
    photo = console_env.store.people.photos(pid)[0]
    stored = console_env.store.people.photo_path(pid, photo["photo_id"]).read_bytes()
    assert stored.startswith(b"\xff\xd8") and stored != original  # decoded and re-encoded
    assert not list(console_env.root.rglob("passwd*"))


@pytest.mark.parametrize("name,data,message", [
    ("notes.jpg", b"hello, I am text", "not a JPEG or PNG"),
    ("poly.jpg", b"\xff\xd8\xff\xe0" + b"<script>alert(1)</script>" * 20, "no readable size"),
    ("bomb.png", png_header(60000, 60000), "too big"),
    ("huge.jpg", b"\xff\xd8\xff\xc0\x00\x11\x08" + struct.pack(">HH", 30000, 30000) + b"\x00" * 64,
     "too big"),
    ("tiny.jpg", jpeg(32, 32), "too small"),
    ("empty.jpg", b"", "empty"),
])
def test_upload_rejects_bad_images_with_clear_message(admin, console_env, name, data, message):
    pid = _person(admin, console_env)
    admin.get(f"/people/{pid}")
    reply = admin.follow(admin.post_files(f"/people/{pid}/photos", [("photos", name, data)]))
    assert reply.status == 200 and message in reply.text and "rejected" in reply.text
    assert ("enrol", pid, 1) not in console_env.device.calls


def real_photo(path, max_bytes: int = 46_000) -> bytes:
    """A real photo re-encoded (JPEG quality 90), shrunk until it is at most ``max_bytes``."""
    image = cv2.imread(str(path))
    width = image.shape[1]
    while True:
        small = cv2.resize(image, (width, round(image.shape[0] * width / image.shape[1])),
                           interpolation=cv2.INTER_AREA)
        data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        if len(data) <= max_bytes:
            return data
        width = int(width * 0.9)


def test_three_real_40kb_photos_in_one_request_are_all_enrolled(admin, console_env, shared_data):
    """Bottle keeps multipart parts in memory up to MEMFILE_MAX (100 KiB by default) for the
    WHOLE request: three ~40 KB photos used to fail with 400 "Memory limit reached"."""
    train = shared_data / "faces-small" / "knn_examples" / "train"
    photos = [real_photo(train / rel) for rel in
              ("obama/obama.jpg", "biden/biden.jpg", "alex_lacamoire/img1.jpg")]
    assert all(34_000 <= len(p) <= 46_000 for p in photos) and sum(map(len, photos)) > 102_400
    pid = _person(admin, console_env)
    admin.get(f"/people/{pid}")
    reply = admin.follow(admin.post_files(f"/people/{pid}/photos",
                                          [("photos", f"photo{i}.jpg", data) for i, data in enumerate(photos)]))
    assert reply.status == 200, reply.text[:300]
    assert "Memory limit" not in reply.text and reply.text.count("accepted") >= 3
    assert console_env.device.calls[-1] == ("enrol", pid, 3)
    assert len(console_env.store.people.photos(pid)) == 3

def test_polyglot_tail_is_dropped_by_reencoding(admin, console_env):
    pid = _person(admin, console_env)
    admin.get(f"/people/{pid}")
    polyglot = jpeg(seed=9) + b"<script>alert(1)</script>PK\x03\x04zipzipzip"
    reply = admin.follow(admin.post_files(f"/people/{pid}/photos", [("photos", "poly.jpg", polyglot)]))
    assert "accepted" in reply.text
    photo = console_env.store.people.photos(pid)[0]
    stored = console_env.store.people.photo_path(pid, photo["photo_id"]).read_bytes()
    assert b"<script>" not in stored and b"PK\x03\x04" not in stored


def test_path_traversal_in_ids_never_reads_files(admin, console_env):
    (console_env.root / "secret.jpg").write_bytes(b"\xff\xd8 top secret")
    for path in ("/people/..%2F..%2Fsecret/photos/x.jpg", "/people/p1/photos/..%2F..%2Fsecret.jpg",
                 "/unknowns/..%2Fsecret/crop.jpg", "/static/../auth.py", "/static/%2e%2e/auth.py"):
        reply = admin.get(path)
        assert 400 <= reply.status < 500 or reply.status == 503, path
        assert b"top secret" not in reply.body and b"argon2" not in reply.body


def test_oversized_upload_rejected_before_reading(admin, console_env):
    pid = _person(admin, console_env)
    admin.get(f"/people/{pid}")
    big = b"\xff\xd8\xff" + b"0" * (9 * 1024 * 1024)
    reply = admin.post_files(f"/people/{pid}/photos", [("photos", "big.jpg", big)])
    assert reply.status == 413 and b"too large" in reply.body
    assert console_env.device.calls == []


def test_json_photo_upload_for_browser_camera(admin, console_env):
    pid = _person(admin, console_env)
    admin.get(f"/people/{pid}")
    reply = admin.post_files(f"/people/{pid}/photos", [("photos", "camera.jpg", jpeg(seed=3))],
                             headers={"Accept": "application/json"})
    assert reply.status == 200 and b'"ok": true' in reply.body


def test_firmware_down_banner_but_login_and_settings_work():
    env = make_env(firmware=False)
    try:
        browser = env.browser()
        assert "Firmware not running" in browser.get("/setup").text
        setup_admin(browser)
        page = browser.get("/settings")
        assert page.status == 200 and "Firmware not running" in page.text
        reply = browser.post("/settings/retention", {"retention_days": "30",
                                                     "audit_retention_days": "400"})
        assert reply.status == 303
        assert "retention_days = 30" in env.config.read_text()
        assert "Saved" in browser.get("/settings").text
    finally:
        env.close()
