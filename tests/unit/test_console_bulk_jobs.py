"""Console bulk enrolment as a background job, over in-process WSGI against a real
ControlServer + Store and the fake device: the upload answers with a 303 to the job's page,
progress shows mid-job, a second upload is refused naming who started the running one, a
firmware that stops answering ends the job as failed with the rows done so far listed, a
reload of the job page re-runs nothing, JSON clients get the job to poll, and the jobs kept
are bounded.

The job is slowed at the console's side (:class:`Gate` holds each row before it reaches the
firmware until the test lets it through), so "mid-job" is a state the test waits for, not
a moment it guesses."""

from __future__ import annotations

import json
import threading
import time

import pytest

from console import pages_enrol
from console.bulkjobs import BulkJobs, JobBusy
from firmware.domain import bulk
from tests.unit.test_console_enrol import jpeg, make_zip
from tests.unit.test_console_roles import operator
from tests.unit.test_console_support import (admin, bulk_job_of, console_env,  # noqa: F401
                                             finished_bulk)

ROWS = 4
CSV = b"name,photos\n" + b"".join(f"Person {i},p{i}.jpg\n".encode() for i in range(ROWS))
ZIP = make_zip({f"p{i}.jpg": jpeg(100 + i) for i in range(ROWS)})
WAIT_S = 10


def wait_until(predicate, what: str, timeout: float = WAIT_S) -> None:
    """Wait for a condition the job's thread makes true (bounded; fails with ``what``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Gate:
    """Holds every row at its first firmware call (``exists``) until :meth:`let` lets
    that many more rows through."""

    def __init__(self, monkeypatch) -> None:
        self._permits = threading.Semaphore(0)
        self.waiting = 0
        real = pages_enrol.ConsoleTarget.exists
        gate = self

        def exists(target, person_id):
            gate.waiting += 1
            acquired = gate._permits.acquire(timeout=WAIT_S * 3)
            gate.waiting -= 1
            assert acquired, "the test never let this row through"
            return real(target, person_id)

        monkeypatch.setattr(pages_enrol.ConsoleTarget, "exists", exists)

    def let(self, rows: int = 1) -> None:
        for _ in range(rows):
            self._permits.release()


@pytest.fixture
def gate(monkeypatch):
    gate = Gate(monkeypatch)
    yield gate
    gate.let(ROWS * 4)  # never leave a job thread blocked behind a failed test


def upload(browser, csv: bytes = CSV, zip_data: bytes = ZIP, headers: dict | None = None, **fields):
    fields.setdefault("basis", "consent")
    browser.get("/people/bulk")
    return browser.post_files("/people/bulk", [("csv", "people.csv", csv), ("zip", "photos.zip", zip_data)],
                              fields=fields, headers=headers)


def api(browser, job_id: str, since: int = 0) -> dict:
    reply = browser.get(f"/api/bulk/{job_id}?since={since}")
    assert reply.status == 200, reply.text
    return json.loads(reply.body)


def statuses(text: str) -> list[str]:
    return [r.split('"')[1] for r in text.split("<tr data-status=")[1:]]


def test_upload_redirects_to_a_job_whose_progress_shows_mid_job_and_ends_with_the_report(
        admin, console_env, gate):
    reply = upload(admin)
    assert reply.status == 303 and reply.location.endswith(f"/people/bulk/{bulk_job_of(admin, reply).id}")
    job = bulk_job_of(admin, reply)
    wait_until(lambda: gate.waiting == 1, "the first row to reach the gate")
    page = admin.follow(reply)
    assert page.status == 200 and 'data-state="running"' in page.text
    assert f'data-poll="/api/bulk/{job.id}"' in page.text and 'src="/static/app.js"' in page.text
    assert '<span id="bulk-done">0</span> of <span id="bulk-total">4</span>' in page.text
    gate.let(2)
    wait_until(lambda: job.snapshot()["done"] == 2 and gate.waiting == 1, "two rows done")
    mid = api(admin, job.id)
    assert (mid["state"], mid["done"], mid["total"], mid["user"]) == ("running", 2, ROWS, "admin")
    assert mid["counts"] == {"ok": 2} and [r["name"] for r in mid["reports"]] == ["Person 0", "Person 1"]
    assert [r["line"] for r in api(admin, job.id, since=1)["reports"]] == [3]  # only what the page lacks
    page = admin.follow(reply)
    assert statuses(page.text) == ["ok", "ok"] and "Report so far" in page.text
    assert '<span id="bulk-done">2</span>' in page.text
    assert f'href="/people/bulk/{job.id}"' in admin.get("/people/bulk").text  # the bulk page links to it
    gate.let(2)
    assert job.wait(WAIT_S)
    done = admin.follow(reply)
    assert 'data-state="done"' in done.text and "data-poll" not in done.text
    assert statuses(done.text) == ["ok"] * ROWS and '<p id="bulk-counts">4 ok</p>' in done.text
    assert {p["id"] for p in console_env.store.people.list()} == {f"person-{i}" for i in range(ROWS)}
    audit = [e for e in console_env.store.audit.list() if e["action"].startswith("bulk.")]
    assert [(e["action"], e["actor"], e["target"]) for e in reversed(audit)] == [
        ("bulk.started", "admin", job.id), ("bulk.finished", "admin", job.id)]
    assert audit[0]["details"]["summary"] == {"ok": ROWS} and audit[0]["details"]["state"] == "done"
    assert audit[1]["details"]["rows"] == ROWS


def test_a_second_upload_while_one_runs_is_refused_naming_who_started_it(admin, console_env, gate):
    first = bulk_job_of(admin, upload(admin))
    wait_until(lambda: gate.waiting == 1, "the first job to start")
    refused = upload(admin, b"name,photos\nOther,p0.jpg\n", make_zip({"p0.jpg": jpeg(1)}))
    assert refused.status == 409 and 'id="bulk-error"' in refused.text
    assert "started by admin is still running (0 of 4 rows done)" in refused.text
    as_json = upload(admin, b"name,photos\nOther,p0.jpg\n", make_zip({"p0.jpg": jpeg(1)}),
                     headers={"Accept": "application/json"})
    answer = json.loads(as_json.body)
    assert as_json.status == 409 and answer["job"] == first.id and "started by admin" in answer["error"]
    # a refusal of the files themselves still answers first, as before
    bad = upload(admin, zip_data=b"PK\x03\x04 not a zip")
    assert bad.status == 200 and "corrupt" in bad.text
    gate.let(ROWS)
    assert first.wait(WAIT_S)
    assert console_env.store.people.get("other") is None
    assert len(console_env.app.config["rollcall.ctx"].bulk._jobs) == 1  # the refused ones never ran


def test_firmware_that_stops_answering_fails_the_job_and_keeps_the_rows_done(admin, console_env, gate):
    reply = upload(admin)
    job = bulk_job_of(admin, reply)
    gate.let(1)
    wait_until(lambda: job.snapshot()["done"] == 1 and gate.waiting == 1, "the first row done")
    console_env.server.close()  # the firmware stops answering
    gate.let(ROWS)
    assert job.wait(WAIT_S)
    view = job.snapshot()
    assert view["state"] == "failed" and view["error"].startswith("the firmware did not answer")
    page = admin.follow(reply)
    assert 'data-state="failed"' in page.text and 'id="bulk-error"' in page.text
    assert "the firmware did not answer" in page.text and statuses(page.text) == ["ok"]
    assert [p["id"] for p in console_env.store.people.list()] == ["person-0"]  # enrolled, not lost


def test_reloading_the_job_page_reruns_nothing(admin, console_env):
    reply = finished_bulk(admin, upload(admin))
    assert statuses(reply.text) == ["ok"] * ROWS
    calls, people = len(console_env.device.calls), console_env.store.people.list()
    ctx = console_env.app.config["rollcall.ctx"]
    [job] = ctx.bulk._jobs.values()
    for _ in range(3):
        again = admin.get(f"/people/bulk/{job.id}")
        assert again.status == 200 and statuses(again.text) == ["ok"] * ROWS
        assert api(admin, job.id)["done"] == ROWS
    assert len(console_env.device.calls) == calls and console_env.store.people.list() == people
    assert len(ctx.bulk._jobs) == 1
    assert sum(e["action"] == "bulk.started" for e in console_env.store.audit.list()) == 1


def test_json_clients_get_the_job_to_poll(admin, console_env):
    reply = upload(admin, headers={"Accept": "application/json"})
    started = json.loads(reply.body)
    assert reply.status == 202 and started["url"] == f"/api/bulk/{started['job']}"
    job = console_env.app.config["rollcall.ctx"].bulk.get(started["job"])
    assert job.wait(WAIT_S)
    done = api(admin, started["job"])
    assert done["state"] == "done" and [r["status"] for r in done["reports"]] == ["ok"] * ROWS
    assert done["counts"] == {"ok": ROWS} and done["error"] == ""
    refused = upload(admin, zip_data=b"PK\x03\x04 not a zip", headers={"Accept": "application/json"})
    answer = json.loads(refused.body)
    assert refused.status == 200 and "corrupt" in answer["error"] and answer["reports"] == []


def test_job_pages_need_an_admin_login(admin, console_env):
    job = bulk_job_of(admin, upload(admin))
    assert job.wait(WAIT_S)
    anonymous = console_env.browser("10.9.9.9")
    assert anonymous.get(f"/api/bulk/{job.id}").status == 401
    page = anonymous.get(f"/people/bulk/{job.id}")
    assert page.status == 303 and "/login" in page.location
    op = operator(console_env, admin)
    assert op.get(f"/api/bulk/{job.id}").status == 403
    assert op.get(f"/people/bulk/{job.id}").status == 403
    assert admin.get("/people/bulk/0123456789abcdef").status == 404
    assert json.loads(admin.get("/api/bulk/nope").body)["error"].startswith("no such bulk enrolment")
    no_token = admin.post_files("/people/bulk", [("csv", "people.csv", CSV), ("zip", "p.zip", ZIP)],
                                fields={"basis": "consent", "csrf": "wrong"})
    assert no_token.status == 403 and len(console_env.app.config["rollcall.ctx"].bulk._jobs) == 1


class _Target:
    """A bulk target in memory for the job registry's own tests."""

    def __init__(self, hold: threading.Event | None = None) -> None:
        self.people: set[str] = set()
        self.hold = hold

    def exists(self, person_id):
        if self.hold is not None:
            assert self.hold.wait(WAIT_S)
        return person_id in self.people

    def create(self, person_id, name, external_id):
        self.people.add(person_id)

    def delete(self, person_id):
        self.people.discard(person_id)

    def enrol(self, person_id, photos, confirm_duplicate):
        return [{"ok": True, "reason": None, "message": "enrolled"} for _ in photos]


def _rows(n: int) -> list[bulk.Row]:
    return bulk.parse_csv(b"name,photos\n" + b"".join(f"P{i},a.jpg\n".encode() for i in range(n)))


def test_job_registry_keeps_the_last_jobs_and_never_drops_a_running_one():
    jobs = BulkJobs(keep=2)
    ended = []
    finished = []
    for _ in range(3):
        finished.append(jobs.start("ann", _rows(2), lambda name: b"x", _Target(), on_end=ended.append))
        assert finished[-1].wait(WAIT_S)
    assert [j.state for j in ended] == ["done"] * 3 and jobs.get(finished[0].id) is None
    hold = threading.Event()
    running = jobs.start("bob", _rows(1), lambda name: b"x", _Target(hold))
    with pytest.raises(JobBusy, match="started by bob"):
        jobs.start("cy", _rows(1), lambda name: b"x", _Target())
    assert jobs.latest() is running and jobs.get(finished[2].id) is not None
    hold.set()
    assert running.wait(WAIT_S) and running.state == "done" and running.snapshot()["done"] == 1


def test_a_job_that_crashes_ends_failed_and_still_cleans_up():
    class Broken(_Target):
        def enrol(self, person_id, photos, confirm_duplicate):
            raise RuntimeError("boom")

    closed = []
    job = BulkJobs().start("ann", _rows(2), lambda name: b"x", Broken(), cleanup=lambda: closed.append(1))
    assert job.wait(WAIT_S)
    assert job.state == "failed" and "boom" in job.error and closed == [1]
