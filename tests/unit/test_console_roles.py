"""Users and roles, persisted logins, the kiosk without a login, and the audit trail, over
in-process WSGI against a real ControlServer + Store (tests/unit/test_console_support.py)."""

from __future__ import annotations

import re
import time

import pytest

from console.app import create_app
from console.auth import Sessions
from console.users import ADMIN, OPERATOR
from tests.unit.test_console_support import (PASSWORD, Browser, admin, console_env,  # noqa: F401
                                             make_env)

OP_PASSWORD = "invigilator-pass-42"
FILLERS = {"action": None, "kind": None}  # path wildcards take their first allowed value


def add_operator(admin: Browser, name: str = "olga") -> None:
    admin.get("/users")
    reply = admin.post("/users", {"user": name, "role": OPERATOR, "password": OP_PASSWORD,
                                  "password2": OP_PASSWORD})
    assert reply.status == 303


def login(browser: Browser, user: str, password: str):
    browser.get("/login")
    return browser.post("/login", {"user": user, "password": password, "next": "/"})


def operator(console_env, admin) -> Browser:
    add_operator(admin)
    browser = console_env.browser("10.1.2.3")
    assert login(browser, "olga", OP_PASSWORD).status == 303
    browser.get("/")
    return browser


def concrete(rule: str) -> str:
    """A path for a route rule: ``<name:re:a|b>`` -> ``a``, ``<n:int>`` -> ``1``, other
    wildcards -> ``x1``."""
    def fill(match: re.Match) -> str:
        spec = match.group(1)
        if ":re:" in spec:
            return spec.split(":re:", 1)[1].split("|")[0]
        return "1" if spec.endswith((":int", ":float")) else "x1"
    return re.sub(r"<([^>]+)>", fill, rule)


def routes(app, kind: str) -> list[tuple[str, str]]:
    """(method, path) of every route that is admin-only / for operators / public."""
    out = []
    for route in app.routes:
        cfg = route.config
        found = ("public" if cfg.get("public") else OPERATOR if cfg.get("role") == OPERATOR
                 else ADMIN)
        if found == kind:
            out.append((route.method, concrete(route.rule)))
    return out


def test_operator_gets_403_on_every_admin_route(admin, console_env):
    op = operator(console_env, admin)
    admin_routes = routes(console_env.app, ADMIN)
    assert len(admin_routes) >= 25  # people, rosters, unknowns, settings, users, audit...
    for method, path in admin_routes:
        reply = op.request(method, path) if method == "GET" else op.post(path, {})
        assert reply.status == 403, (method, path, reply.status)
        assert "needs an admin" in reply.text
    for method, path in routes(console_env.app, OPERATOR):
        if path not in ("/logout", "/live/stream.mjpg"):  # logout ends the session; the stream
            # runs for up to 10 minutes: its route is checked to be for operators below
            reply = op.request(method, path) if method == "GET" else op.post(path, {})
            assert reply.status != 403, (method, path, reply.text[-300:])
    stream = console_env.app.routes[[r.rule for r in console_env.app.routes].index("/live/stream.mjpg")]
    assert stream.config.get("role") == OPERATOR
    for method, path in admin_routes:
        if method == "GET" and "photos" not in path and not path.endswith((".jpg", ".csv")):
            assert admin.get(path).status != 403, path
    assert ("enrol", "x1", 1) not in console_env.device.calls


def test_operator_runs_sessions_and_marks_but_not_enrolment(admin, console_env):
    store = console_env.store
    admin.post("/people", {"name": "Ann", "basis": "consent"})
    pid = store.people.list()[0]["id"]
    roster = store.rosters.create("Y9", [{"person_id": pid, "seat": "B4"}])
    session = store.sessions.create(roster["id"], "lab", "Maths", time.time() - 60, time.time() + 3600)
    op = operator(console_env, admin)
    nav = op.get("/").text
    assert "/sessions" in nav and "/attendance" in nav and 'href="/people"' not in nav
    op.get(f"/sessions/{session['id']}")
    assert op.post(f"/sessions/{session['id']}/start").status == 303
    assert op.post(f"/sessions/{session['id']}/status", {"person_id": pid, "status": "late"}).status == 303
    assert store.attendance.get(session["id"], pid)["status"] == "late"
    assert op.post("/people", {"name": "Mallory"}).status == 403
    assert op.post(f"/people/{pid}/delete").status == 403
    assert [p["name"] for p in store.people.list()] == ["Ann"]
    audit = {(a["actor"], a["action"]) for a in store.audit.list(limit=100)}
    assert ("olga", "login") in audit and ("admin", "user.created") in audit


def test_users_roles_and_the_last_admin(admin, console_env):
    add_operator(admin)
    page = admin.get("/users").text
    assert "olga" in page and "operator" in page
    admin.post("/users/admin/role", {"role": OPERATOR})
    assert "last admin" in admin.get("/users").text
    assert admin.post("/users/admin/delete").status == 303
    assert console_env.app.config["rollcall.ctx"].users.role("admin") == ADMIN
    admin.get("/users")
    admin.post("/users", {"user": "bad name!", "role": OPERATOR, "password": OP_PASSWORD,
                          "password2": OP_PASSWORD})
    assert "user not added" in admin.get("/users").text
    admin.post("/users/olga/role", {"role": ADMIN})
    users = console_env.app.config["rollcall.ctx"].users
    assert users.role("olga") == ADMIN
    admin.get("/users")
    admin.post("/users/olga/delete")
    assert users.role("olga") is None
    path = console_env.root / "secrets" / "users.json"
    assert path.stat().st_mode & 0o777 == 0o600 and OP_PASSWORD not in path.read_text()


def test_deleted_user_is_logged_out_at_once(admin, console_env):
    op = operator(console_env, admin)
    assert op.get("/sessions").status == 200
    admin.get("/users")
    admin.post("/users/olga/delete")
    assert op.get("/sessions").status in (302, 303)


def test_logins_survive_a_console_restart_until_the_absolute_lifetime(console_env):
    now = [1_000_000.0]
    app = create_app(console_env.config, clock=lambda: now[0])
    browser = Browser(app)
    browser.get("/setup")
    browser.post("/setup", {"user": "admin", "password": PASSWORD, "password2": PASSWORD})
    assert browser.get("/settings").status == 200
    saved = console_env.root / "secrets" / "sessions.json"
    assert saved.stat().st_mode & 0o777 == 0o600
    assert browser.cookies["rc_session"].split(".")[0] not in saved.read_text()  # ids hashed

    restarted = create_app(console_env.config, clock=lambda: now[0])
    browser.app = restarted
    assert browser.get("/settings").status == 200  # still logged in after the restart
    for _ in range(int(Sessions.ABSOLUTE_S // 3600)):  # active every hour: idle never ends it
        now[0] += 3500
        assert browser.get("/sessions").status == 200
    now[0] += 3600
    assert browser.get("/settings").status in (302, 303)  # the absolute lifetime is over


def test_kiosk_without_login_on_loopback_and_with_a_revocable_token(admin, console_env):
    screen = console_env.browser("127.0.0.1")
    assert screen.get("/kiosk").status == 200 and screen.get("/api/kiosk").status == 200
    remote = console_env.browser("10.9.8.7")
    assert remote.get("/kiosk").status in (302, 303)
    assert remote.get("/api/kiosk").status == 401
    assert remote.get("/kiosk?token=guess").status in (302, 303)
    admin.get("/settings")
    admin.post("/settings/kiosk/renew")
    page = admin.get("/settings").text
    token = re.search(r"/kiosk\?token=([A-Za-z0-9_-]+)", page).group(1)
    reply = remote.get(f"/kiosk?token={token}")
    assert reply.status in (302, 303) and reply.location.endswith("/kiosk")  # token leaves the URL
    assert "HttpOnly" in reply.headers["Set-Cookie"][0]
    assert remote.get("/kiosk").status == 200
    assert remote.get("/api/kiosk").status == 200
    assert remote.get("/people").status in (302, 303)  # the token opens the kiosk only
    assert remote.get("/people/p1/photos/ph1.jpg").status == 403  # nobody is on the kiosk now
    assert remote.get("/live/snapshot.jpg").status == 401 or remote.get("/live/snapshot.jpg").status in (302, 303)
    admin.get("/settings")
    admin.post("/settings/kiosk/revoke")
    assert remote.get("/api/kiosk").status == 401
    actions = [a["action"] for a in console_env.store.audit.list(limit=50)]
    assert "kiosk.link_renewed" in actions and "kiosk.link_revoked" in actions
    assert token not in str(console_env.store.audit.list(limit=50))


def test_failed_logins_and_lockout_are_audited_with_who(admin, console_env):
    stranger = console_env.browser("10.0.0.66")
    for _ in range(5):
        assert login(stranger, "admin", "wrong-password-123").status == 401
    assert login(stranger, "admin", PASSWORD).status == 429
    entries = console_env.store.audit.list(limit=100)
    failed = [a for a in entries if a["action"] == "login.failed"]
    assert len(failed) == 5 and all(a["target"] == "admin" and a["actor"] == "anonymous"
                                    and a["details"]["client"] == "10.0.0.66" for a in failed)
    locked = [a for a in entries if a["action"] == "login.locked"]
    assert len(locked) == 1 and locked[0]["details"]["for_s"] >= 30
    assert all(a["actor"] for a in entries)
    page = admin.get("/audit").text
    assert "login.failed" in page and "login.locked" in page and "10.0.0.66" in page


def test_settings_changes_audited_as_old_to_new_with_secrets_masked(admin, console_env):
    admin.get("/settings")
    admin.post("/settings/mqtt", {"mqtt_enabled": "1", "mqtt_host": "broker.lan", "mqtt_port": "8883",
                                  "mqtt_username": "door-secret-user", "mqtt_tls": "1"})
    entry = next(a for a in console_env.store.audit.list(limit=20) if a["action"] == "settings.mqtt")
    assert entry["actor"] == "admin"
    assert entry["details"]["mqtt.host"] == "'' -> 'broker.lan'"
    assert entry["details"]["mqtt.port"] == "1883 -> 8883" and entry["details"]["mqtt.tls"] == "false -> true"
    assert entry["details"]["mqtt.username"] == "*** -> *** (changed)"
    assert "door-secret-user" not in admin.get("/audit").text
    assert "broker.lan" in admin.get("/audit").text


def test_audit_times_are_local_not_utc(console_env):
    env = make_env(extra='[device]\ntimezone = "Asia/Tokyo"\n')
    try:
        browser = env.browser()
        browser.get("/setup")
        browser.post("/setup", {"user": "admin", "password": PASSWORD, "password2": PASSWORD})
        entry = env.store.audit.log("admin", "test.entry")
        page = browser.get("/audit").text
        assert entry["at"] not in page and "Asia/Tokyo" in page
        from datetime import datetime
        from zoneinfo import ZoneInfo
        local = datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Tokyo"))
        assert local.strftime("%Y-%m-%d %H:%M:%S") in page
    finally:
        env.close()


def test_person_name_and_student_number_edited_and_audited(admin, console_env):
    admin.post("/people", {"name": "Bea", "external_id": "S-1", "basis": "consent"})
    pid = console_env.store.people.list()[0]["id"]
    admin.get(f"/people/{pid}")
    assert admin.post(f"/people/{pid}/edit", {"name": "Beatrice", "external_id": "S-100"}).status == 303
    person = console_env.store.people.get(pid)
    assert (person["name"], person["external_id"]) == ("Beatrice", "S-100")
    entry = next(a for a in console_env.store.audit.list(limit=20) if a["action"] == "person.updated")
    assert entry["actor"] == "admin"
    assert entry["details"]["changes"] == {"name": ["Bea", "Beatrice"], "external_id": ["S-1", "S-100"]}
    assert "name: Bea -&gt; Beatrice" in admin.get("/audit").text
    admin.get(f"/people/{pid}")
    admin.post(f"/people/{pid}/edit", {"name": "  ", "external_id": ""})
    assert console_env.store.people.get(pid)["name"] == "Beatrice"


@pytest.mark.parametrize("field,value,key,message", [
    ("id", "", "device.id", "set a device id"),
    ("id", "bad id!", "device.id", "String should match pattern"),
    ("mqtt_host", "mqtt://broker.lan", "mqtt.host", "no mqtt://"),
    ("pin_red", "17", "gpio.red.pin", "already used by green"),
    ("pin_relay", "GPIO4", "gpio.relay.pin", "not a whole number: 'GPIO4'"),
    ("mqtt_port", "1883.5", "mqtt.port", "not a whole number"),
])
def test_device_setup_refuses_what_the_firmware_could_not_run(admin, console_env, field, value, key, message):
    before = console_env.config.read_text()
    form = {"id": "door-1", "name": "Hall", "site": "north", "room": "r1", "timezone": "UTC",
            "camera_source": "auto", "mqtt_host": "broker.lan", "mqtt_port": "1883", "pin_green": "17",
            "pin_red": "27", field: value}
    admin.get("/setup/device")
    reply = admin.post("/setup/device", form)
    assert reply.status == 400
    found = re.search(rf'data-field="{re.escape(key)}">([^<]+)<', reply.text)
    assert found and message in found.group(1).replace("&#039;", "'"), reply.text[-3000:]
    assert f'value="{value}"' in reply.text  # what was typed stays in the form
    assert console_env.config.read_text() == before


def test_device_id_is_shown_made_from_the_machine_and_editable(admin, console_env):
    from firmware.config import load_config, machine_device_id

    page = admin.get("/setup/device").text
    assert f'name="id" value="{machine_device_id()}"' in page
    admin.post("/settings/retention", {"retention_days": "30", "audit_retention_days": "400"})
    assert load_config(console_env.config).device.id == machine_device_id()  # any save fills it in
    admin.get("/setup/device")
    admin.post("/setup/device", {"id": "door-7", "name": "Hall", "site": "north", "room": "r1",
                                 "timezone": "UTC", "camera_source": "auto", "mqtt_host": "",
                                 "mqtt_port": "1883"})
    assert load_config(console_env.config).device.id == "door-7"


def test_restart_firmware_button(admin, console_env):
    admin.get("/settings")
    assert admin.post("/settings/restart").status == 303
    assert ("restart",) in console_env.device.calls
    assert any(a["action"] == "firmware.restart" and a["actor"] == "admin"
               for a in console_env.store.audit.list(limit=20))


def test_firmware_last_start_error_shown_verbatim():
    from firmware.runtime.logfiles import write_start_error

    env = make_env(firmware=False)
    try:
        message = "StoreError: cannot open /srv/data: [Errno 13] Permission denied\n  more detail"
        write_start_error(env.root / "log", message)
        browser = env.browser()
        browser.get("/setup")
        browser.post("/setup", {"user": "admin", "password": PASSWORD, "password2": PASSWORD})
        page = browser.get("/settings").text
        assert "Firmware not running" in page and "Its last start failed" in page
        assert "StoreError: cannot open /srv/data: [Errno 13] Permission denied\n  more detail" in page
    finally:
        env.close()


def test_diagnostics_hold_the_last_log_lines_with_secrets_redacted(admin, console_env):
    import io
    import zipfile

    log = console_env.root / "log"
    log.mkdir()
    lines = [f"2026-01-01 INFO x: line {i}" for i in range(3000)]
    lines[2990] = "2026-01-01 INFO x: mqtt password=hunter2-secret token: abcdef123456 ok"
    lines[2991] = "2026-01-01 INFO x: url mqtt://door:pa55word@broker.lan Authorization: Bearer eyJhbGciOiJIUzI1"
    lines[2992] = "2026-01-01 INFO x: setup code K7QF-3MZP-WX2D hash $argon2id$v=19$m=65536$abc"
    (log / "firmware.log").write_text("\n".join(lines) + "\n")
    bundle = zipfile.ZipFile(io.BytesIO(admin.get("/settings/diagnostics.zip").body))
    text = bundle.read("logs/firmware.log").decode()
    kept = text.splitlines()
    assert len(kept) == 2000 and kept[0].endswith("line 1000") and kept[-1].endswith("line 2999")
    for secret in ("hunter2", "abcdef123456", "pa55word", "eyJhbGciOiJIUzI1", "K7QF-3MZP-WX2D", "$argon2id$"):
        assert secret not in text, secret
    assert "password=***" in text and "broker.lan" in text
