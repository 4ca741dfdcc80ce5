"""Bulk enrolment as a background job of the console process.

The upload is validated in the request (CSV, zip limits, legal basis); the rows then run
one by one in a thread (:func:`firmware.domain.bulk.run_bulk`, the rules shared with
``rollcall enroll --csv``) while the browser follows the job's page. One job runs at a
time per console: a second upload while one runs is refused with :class:`JobBusy`,
which names who started the running one. The last :data:`KEEP` jobs stay in memory with
their reports (nothing survives a console restart: the people enrolled are in the
firmware's store and its audit log either way).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from firmware.domain import bulk
from firmware.errors import ControlError

logger = logging.getLogger(__name__)

KEEP = 5
RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass
class BulkJob:
    """One bulk upload's run: who started it, how far it got, the row reports so far."""

    id: str
    user: str
    total: int
    started_at: float
    options: dict = field(default_factory=dict)
    state: str = RUNNING
    error: str = ""
    finished_at: float | None = None
    _reports: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    def add(self, report: bulk.RowReport) -> None:
        with self._lock:
            self._reports.append(report.as_dict())

    def finish(self, state: str, error: str, at: float) -> None:
        with self._lock:
            self.state, self.error, self.finished_at = state, error, at

    def reports(self, since: int = 0) -> list[dict]:
        with self._lock:
            return list(self._reports[max(0, since):])

    def counts(self) -> dict[str, int]:
        """{label: rows} over the rows done so far (the report's summary line)."""
        out: dict[str, int] = {}
        for r in self.reports():
            out[r["label"]] = out.get(r["label"], 0) + 1
        return out

    def summary(self) -> dict[str, int]:
        """{status: rows} over the rows done so far (for the audit log)."""
        out: dict[str, int] = {}
        for r in self.reports():
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out

    def snapshot(self, since: int = 0) -> dict:
        """The job as JSON: progress, counts so far, and the row reports from ``since`` on."""
        with self._lock:
            reports = list(self._reports)
            state, error, finished = self.state, self.error, self.finished_at
        counts: dict[str, int] = {}
        for r in reports:
            counts[r["label"]] = counts.get(r["label"], 0) + 1
        return {"id": self.id, "user": self.user, "state": state, "error": error,
                "started_at": self.started_at, "finished_at": finished,
                "done": len(reports), "total": self.total, "counts": counts,
                "since": max(0, since), "reports": reports[max(0, since):]}

    def wait(self, timeout: float | None = None) -> bool:
        """True once the job has ended and its end was recorded (tests, JSON clients)."""
        return self._finished.wait(timeout)

    def busy_message(self) -> str:
        with self._lock:
            done = len(self._reports)
        return (f"a bulk enrolment started by {self.user} is still running ({done} of {self.total} "
                "rows done): wait for it to finish, then upload again")


class JobBusy(Exception):
    """A bulk job is already running in this console."""

    def __init__(self, job: BulkJob) -> None:
        super().__init__(job.busy_message())
        self.job = job


class BulkJobs:
    """The console's bulk jobs: at most one running, the last ``keep`` kept."""

    def __init__(self, keep: int = KEEP, clock: Callable[[], float] = time.time) -> None:
        self.keep, self.clock = keep, clock
        self._jobs: OrderedDict[str, BulkJob] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, job_id: str) -> BulkJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def latest(self) -> BulkJob | None:
        """The running job, else the newest one kept."""
        with self._lock:
            jobs = list(self._jobs.values())
        return next((j for j in jobs if j.running), jobs[-1] if jobs else None)

    def running(self) -> BulkJob | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.running), None)

    def start(self, user: str, rows: list[bulk.Row], read_photo: Callable[[str], bytes],
              target: bulk.BulkTarget, *, confirm_duplicate: bool = False, options: dict | None = None,
              on_start: Callable[[BulkJob], None] | None = None,
              on_end: Callable[[BulkJob], None] | None = None,
              cleanup: Callable[[], None] | None = None) -> BulkJob:
        """Run ``rows`` in a new thread and return its job at once; raises :class:`JobBusy`
        while another job runs. ``on_start(job)`` (the audit entry naming who started it) runs
        before the first row; ``cleanup()`` (closing the zip) then ``on_end(job)`` (the audit
        summary) when the job ends, however it ends."""
        with self._lock:
            busy = next((j for j in self._jobs.values() if j.running), None)
            if busy is not None:
                raise JobBusy(busy)
            job = BulkJob(secrets.token_hex(8), user, len(rows), self.clock(), dict(options or {}))
            self._jobs[job.id] = job
            self._trim()
        if on_start is not None:
            try:
                on_start(job)
            except Exception:  # noqa: BLE001 - ctx.audit already logs a firmware that is down
                logger.exception("bulk job %s: recording its start failed", job.id)
        thread = threading.Thread(target=self._run, name=f"bulk-{job.id}", daemon=True,
                                  args=(job, rows, read_photo, target, confirm_duplicate, on_end, cleanup))
        try:
            thread.start()
        except RuntimeError as exc:  # no thread could be started: the job never ran
            job.finish(FAILED, f"the job could not start: {exc}", self.clock())
            job._finished.set()
            if cleanup is not None:
                cleanup()
            raise
        return job

    def _trim(self) -> None:
        while len(self._jobs) > self.keep:
            oldest = next((k for k, j in self._jobs.items() if not j.running), None)
            if oldest is None:
                return
            del self._jobs[oldest]

    def _run(self, job: BulkJob, rows, read_photo, target, confirm: bool, on_end, cleanup) -> None:
        try:
            bulk.run_bulk(rows, read_photo, target, confirm_duplicate=confirm, on_report=job.add)
            job.finish(DONE, "", self.clock())
        except ControlError as exc:
            job.finish(FAILED, f"the firmware did not answer: {exc}", self.clock())
        except Exception as exc:  # noqa: BLE001 - a job never dies silently: the page says why
            logger.exception("bulk job %s by %s failed", job.id, job.user)
            job.finish(FAILED, f"internal error in the console: {exc}", self.clock())
        finally:
            try:
                if cleanup is not None:
                    cleanup()
                if on_end is not None:
                    on_end(job)
            except Exception:  # noqa: BLE001 - the job's own end is already recorded
                logger.exception("bulk job %s: ending it failed", job.id)
            finally:
                job._finished.set()
