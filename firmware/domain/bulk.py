"""Bulk enrolment: a CSV of people plus a folder (or zip) of photos, one report row per person.

The CSV has a header row with the columns ``name`` and ``photos`` (required) and
``person_id`` and ``external_id`` (optional). ``photos`` lists file names relative to the
photo folder, separated by ``;``. Without a ``person_id`` the id is made from the
external id, else from the name (``Tony Blair`` -> ``tony-blair``), so the same CSV run
twice addresses the same people: a re-run changes nothing and reports ``already``.

:func:`run_bulk` is shared by ``rollcall enroll --csv`` (which enrols directly) and the
console (which goes through the firmware's control API): both give it a
:class:`BulkTarget`. Row status: ``ok`` (at least one photo enrolled), ``already`` (every
photo was enrolled before), else the first photo's refusal reason (``no_face``,
``two_faces``, ``different_person``, ``duplicate``, ``bad_image``, ``small_face``,
``missing_photo``) or ``bad_row`` for a row that cannot be read.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable, Protocol

MAX_ROWS = 5000
MAX_PHOTOS_PER_ROW = 10
MAX_CSV_BYTES = 2 * 1024 * 1024
REQUIRED = ("name", "photos")
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LABELS = {"ok": "ok", "already": "already enrolled", "no_face": "no face", "two_faces": "two faces",
          "different_person": "different person", "duplicate": "duplicate", "bad_image": "bad image",
          "small_face": "face too small", "missing_photo": "missing photo", "bad_row": "bad row",
          "error": "error"}


class BulkError(ValueError):
    """The CSV as a whole cannot be used (no header, missing columns, too big)."""


@dataclass(slots=True)
class Row:
    """One CSV row (``line`` is its line number in the file, header = 1)."""

    line: int
    name: str
    person_id: str
    external_id: str | None
    photos: list[str]
    error: str = ""


@dataclass(slots=True)
class RowReport:
    """What happened to one row; ``photos`` is [{"file", "status", "reason", "message"}]."""

    line: int
    person_id: str
    name: str
    status: str
    message: str
    photos: list[dict] = field(default_factory=list)

    @property
    def label(self) -> str:
        return LABELS.get(self.status, self.status)

    def as_dict(self) -> dict:
        return {"line": self.line, "person_id": self.person_id, "name": self.name, "status": self.status,
                "label": self.label, "message": self.message, "photos": self.photos}


class BulkTarget(Protocol):
    """Where a bulk run enrols: the store directly (CLI) or the control API (console)."""

    def exists(self, person_id: str) -> bool: ...

    def create(self, person_id: str, name: str, external_id: str | None) -> None: ...

    def delete(self, person_id: str) -> None: ...

    def enrol(self, person_id: str, photos: list[bytes], confirm_duplicate: bool) -> list[dict]: ...


def slug(text: str) -> str:
    """``Tony Blair`` -> ``tony-blair`` (ASCII letters, digits and '-', at most 64)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:64]


def _safe_name(name: str) -> bool:
    """A photo name relative to the folder: no absolute path, no '..', no backslash."""
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and "\\" not in name and ".." not in parts


def _row(line: int, raw: dict) -> Row:
    name = (raw.get("name") or "").strip()
    external = (raw.get("external_id") or "").strip() or None
    person_id = (raw.get("person_id") or "").strip() or slug(external or name)
    photos = [p.strip() for p in (raw.get("photos") or "").split(";") if p.strip()]
    row = Row(line, name, person_id, external, photos)
    if not name:
        row.error = "no name"
    elif not ID_RE.match(person_id):
        row.error = f"person id {person_id!r}: use 1-64 letters, digits, '_' or '-'"
    elif not photos:
        row.error = "no photos listed (the photos column, names separated by ';')"
    elif len(photos) > MAX_PHOTOS_PER_ROW:
        row.error = f"{len(photos)} photos: at most {MAX_PHOTOS_PER_ROW} per person"
    elif not all(_safe_name(p) for p in photos):
        row.error = "a photo name is not a plain relative file name"
    return row


def parse_csv(data: bytes) -> list[Row]:
    """Rows of a people CSV (UTF-8, with or without BOM); bad rows carry ``error``.
    Raises :class:`BulkError` when the file as a whole is unusable."""
    if len(data) > MAX_CSV_BYTES:
        raise BulkError(f"the CSV is too large ({len(data)} bytes; limit {MAX_CSV_BYTES})")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BulkError("the CSV is not UTF-8 text: save it as 'CSV UTF-8'") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise BulkError(f"the CSV needs a header row with the columns {', '.join(REQUIRED)} "
                        f"(missing: {', '.join(missing)})")
    reader.fieldnames = header
    rows, seen = [], {}
    try:
        for raw in reader:
            if len(rows) >= MAX_ROWS:
                raise BulkError(f"more than {MAX_ROWS} rows: split the file")
            if not any((v or "").strip() for v in raw.values() if isinstance(v, str)):
                continue
            row = _row(reader.line_num, raw)
            if not row.error and row.person_id in seen:
                row.error = f"same person id {row.person_id!r} as line {seen[row.person_id]}"
            seen.setdefault(row.person_id, row.line)
            rows.append(row)
    except csv.Error as exc:
        raise BulkError(f"the CSV cannot be read near line {reader.line_num}: {exc}") from None
    return rows


def _status(results: list[dict]) -> tuple[str, str]:
    """Row status and message from the per-photo results."""
    ok = [r for r in results if r.get("ok")]
    if ok:
        return "ok", f"{len(ok)} of {len(results)} photos enrolled"
    if all(r.get("reason") == "already" for r in results):
        return "already", "every photo was already enrolled: nothing changed"
    first = next(r for r in results if r.get("reason") != "already")
    return first.get("reason") or "error", first.get("message", "")


def run_row(row: Row, read_photo: Callable[[str], bytes], target: BulkTarget,
            confirm_duplicate: bool = False) -> RowReport:
    """Enrol one row; never raises for a bad photo (the report says what happened)."""
    if row.error:
        return RowReport(row.line, row.person_id, row.name, "bad_row", row.error)
    photos, names, results = [], [], []
    for name in row.photos:
        try:
            photos.append(read_photo(name))
            names.append(name)
        except (OSError, KeyError, ValueError) as exc:
            results.append({"file": name, "ok": False, "reason": "missing_photo",
                            "message": f"cannot read {name}: {exc}"})
    created = False
    if photos and not target.exists(row.person_id):
        target.create(row.person_id, row.name, row.external_id)
        created = True
    answers = target.enrol(row.person_id, photos, confirm_duplicate) if photos else []
    results = [{"file": n, **a} for n, a in zip(names, answers)] + results
    status, message = _status(results)
    if created and status != "ok":
        target.delete(row.person_id)   # nothing enrolled: leave no empty person behind
    report = [{k: r.get(k) for k in ("file", "ok", "reason", "message")} for r in results]
    return RowReport(row.line, row.person_id, row.name, status, message, report)


def run_bulk(rows: list[Row], read_photo: Callable[[str], bytes], target: BulkTarget, *,
             confirm_duplicate: bool = False,
             progress: Callable[[int, int], None] | None = None,
             on_report: Callable[[RowReport], None] | None = None) -> list[RowReport]:
    """Every row in order; ``on_report(report)`` then ``progress(done, total)`` after each
    (the console's background job shows each row as soon as it is done)."""
    reports = []
    for done, row in enumerate(rows, 1):
        reports.append(run_row(row, read_photo, target, confirm_duplicate))
        if on_report is not None:
            on_report(reports[-1])
        if progress is not None:
            progress(done, len(rows))
    return reports


def summary(reports: list[RowReport]) -> dict[str, int]:
    """{status: count} over the reports."""
    out: dict[str, int] = {}
    for report in reports:
        out[report.status] = out.get(report.status, 0) + 1
    return out
