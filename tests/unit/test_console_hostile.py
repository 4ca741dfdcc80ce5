"""The console against a hostile LAN client (issue 13.3): anonymous visitors get no
server-side session, password checks are throttled before they run and capped in number,
sessions end after an absolute lifetime, ``next`` is a plain same-origin path."""

from __future__ import annotations

import json
import threading
import time

import pytest
from argon2 import PasswordHasher
from hypothesis import given, settings
from hypothesis import strategies as st

from console.app import create_app
from console.auth import ARGON2_MEMORY_KIB, LoginLimiter, Sessions, pi_hasher
from console.users import ADMIN, Users
from console.pages_auth import safe_next
from console.throttle import PasswordGate, TokenBucket
from tests.unit.test_console_support import (PASSWORD, Browser, admin, console_env,  # noqa: F401
                                             make_env, setup_admin)


class CountingHasher(PasswordHasher):
    """A cheap argon2id hasher that records how many checks ran and how many at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.calls = self.running = self.peak = 0
        self._lock = threading.Lock()

    def verify(self, hash, password):  # noqa: A002 - argon2's own parameter name
        with self._lock:
            self.calls += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(0.05)  # a real check on a Pi takes ~0.3 s: let the burst overlap
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


def burst(env, addresses: list[str], password: str = "wrong-password-x") -> list[int]:
    """Every address posts one login at the same moment; returns the status codes."""
    browsers = [env.browser(remote_addr=a) for a in addresses]
    for browser in browsers:
        browser.get("/login")
    go, codes = threading.Barrier(len(browsers)), []

    def attempt(browser: Browser) -> None:
        go.wait()
        codes.append(browser.post("/login", {"user": "admin", "password": password}).status)

    threads = [threading.Thread(target=attempt, args=(b,)) for b in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return codes


@pytest.fixture
def counted():
    env = make_env()
    setup_admin(env.browser())
    hasher = CountingHasher()
    env.app.config["rollcall.ctx"].users.hasher = hasher
    try:
        yield env, hasher
    finally:
        env.close()


def test_simultaneous_wrong_logins_from_one_address_are_locked_out_before_checking(counted):
    env, hasher = counted
    codes = burst(env, ["10.1.1.1"] * 12)
    assert hasher.calls <= 5 and hasher.peak <= 2, (hasher.calls, hasher.peak)
    assert codes.count(429) + codes.count(503) >= 7 and set(codes) <= {401, 429, 503}


def test_guessing_from_many_addresses_is_throttled_globally_and_per_account(counted):
    env, hasher = counted
    codes = burst(env, [f"10.2.0.{i}" for i in range(50)])
    assert hasher.peak <= 2 and hasher.calls <= 30, (hasher.calls, hasher.peak)
    assert 429 in codes or 503 in codes
    gate = env.app.config["rollcall.ctx"].gate
    assert gate.by_account.wait_s("admin") > 0  # the account is cooling down too


def test_gate_records_the_attempt_before_the_check_and_clears_it_on_success():
    now = [0.0]
    gate = PasswordGate(LoginLimiter(clock=lambda: now[0], free=2), clock=lambda: now[0])
    seen = []
    ok, _ = gate.check("a", "admin", lambda: seen.append(gate.by_address._clients["a"][0]) or False)
    assert not ok and seen == [1]  # the failure was on record while the check ran
    gate.check("a", "admin", lambda: False)
    ok, verdict = gate.check("a", "admin", lambda: True)
    assert not ok and verdict.status == 429 and "address" in verdict.message
    now[0] += 31
    ok, verdict = gate.check("a", "admin", lambda: True)
    assert ok and gate.by_address.wait_s("a") == 0 and "a" not in gate.by_address._clients


def test_token_bucket_refills_at_its_rate():
    now = [0.0]
    bucket = TokenBucket(2, 60.0, lambda: now[0])
    assert bucket.take() == 0 and bucket.take() == 0 and bucket.take() == pytest.approx(1.0)
    now[0] += 1.0
    assert bucket.take() == 0


def test_anonymous_visitors_never_create_or_evict_sessions(console_env, monkeypatch):
    ctx = console_env.app.config["rollcall.ctx"]
    admin = console_env.browser()
    setup_admin(admin)
    monkeypatch.setattr(Sessions, "MAX_SESSIONS", 3)
    for _ in range(40):  # cookie-less GET /login used to make (and evict) a session each
        reply = console_env.browser().get("/login")
        assert reply.status == 200 and "rc_session" not in str(reply.headers.get("Set-Cookie"))
    assert len(ctx.sessions._data) == 1
    assert admin.get("/people").status == 200


def test_prelogin_form_needs_its_signed_cookie(console_env):
    setup_admin(console_env.browser())
    browser = console_env.browser()
    browser.get("/login")
    token, cookie = browser.csrf, browser.cookies["rc_pre"]
    stranger = console_env.browser()  # a cross-site form has the token but not the cookie
    assert stranger.post("/login", {"user": "admin", "password": PASSWORD, "csrf": token},
                         csrf=False).status == 403
    browser.cookies["rc_pre"] = cookie[:-1] + ("0" if cookie[-1] != "0" else "1")  # forged MAC
    assert browser.post("/login", {"user": "admin", "password": PASSWORD}).status == 403
    browser.cookies["rc_pre"] = cookie
    assert browser.post("/login", {"user": "admin", "password": PASSWORD}).status == 303


def test_sessions_end_after_the_absolute_lifetime():
    now = [1_000_000.0]
    env = make_env()
    try:
        app = create_app(env.config, clock=lambda: now[0],
                         password_hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        browser = Browser(app)
        setup_admin(browser)
        for _ in range(11):  # used every hour: the idle limit never bites
            now[0] += 3600
            assert browser.get("/people").status == 200
        now[0] += 3601
        reply = browser.get("/people")
        assert reply.status in (302, 303) and "/login" in reply.location
    finally:
        env.close()


@pytest.mark.parametrize("url", ["//evil.example/", "/\t/evil.example/", "/\r\n/evil.example",
                                 "/\\evil.example", "/a/..//evil", "https://evil.example/",
                                 "javascript:alert(1)", "/\x00", " /people", "/people\n"])
def test_next_refuses_anything_but_a_plain_path(url):
    assert safe_next(url) == "/"


def test_next_keeps_plain_paths_with_queries():
    for url in ("/people", "/people?q=a%20b&page=2", "/sessions/s1#top", "/%0a"):
        assert safe_next(url) == url


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_next_is_always_a_single_slash_path_without_controls(url):
    got = safe_next(url)
    assert got.startswith("/") and not got.startswith("//") and "\\" not in got
    assert all(32 < ord(c) < 127 for c in got)


def test_export_with_a_bad_filter_says_what_was_wrong(admin, console_env):
    reply = admin.get("/attendance/export.csv?day_from=yesterday&status=present")
    assert reply.status == 400 and "not running" not in reply.text and "day" in reply.text.lower()
    console_env.server.close()  # and when the firmware IS down, it says so
    reply = admin.get("/attendance/export.csv")
    assert reply.status == 503 and "not running" in reply.text


def test_a_hash_with_old_costlier_parameters_is_rehashed_at_login(tmp_path):
    old = Users(tmp_path, PasswordHasher(time_cost=1, memory_cost=2048, parallelism=1))
    old.add("admin", PASSWORD, ADMIN, bootstrap=True)
    account = Users(tmp_path)
    assert account.hasher.memory_cost == ARGON2_MEMORY_KIB == 32 * 1024
    assert account.verify("admin", PASSWORD) == ADMIN
    stored = json.loads((tmp_path / "users.json").read_text())["users"]["admin"]["hash"]
    assert f"m={ARGON2_MEMORY_KIB}" in stored and not pi_hasher().check_needs_rehash(stored)
    assert Users(tmp_path).verify("admin", PASSWORD) == ADMIN  # admin.json (older hash) is not re-imported
