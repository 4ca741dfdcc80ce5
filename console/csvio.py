"""CSV in and out: formula-injection guard, Excel-friendly BOM option, roster import."""

from __future__ import annotations

import csv
import io
from typing import Iterable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MAX_IMPORT_ROWS = 5000


def safe_cell(value) -> str:
    """Text of one cell; a leading = + - @ (or tab/CR) is neutralised with a quote so a
    spreadsheet never runs it as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START):
        return "'" + text
    return text


def to_csv(header: list[str] | None, rows: Iterable[list], *, bom: bool = False) -> bytes:
    """UTF-8 CSV bytes (RFC 4180 quoting, CRLF), optionally with a BOM for Excel.

    ``header`` None writes rows only (a later chunk of a streamed file)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    if header is not None:
        writer.writerow([safe_cell(h) for h in header])
    for row in rows:
        writer.writerow([safe_cell(v) for v in row])
    data = buffer.getvalue().encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if bom else data


def parse_roster_csv(data: bytes) -> list[dict]:
    """Rows of a roster CSV: columns ``person_id`` or ``external_id`` or ``name``, and ``seat``.

    Raises ValueError with a clear message for an unusable file."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("the CSV file is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = {f.strip().lower() for f in reader.fieldnames or []}
    if not fields & {"person_id", "external_id", "name"}:
        raise ValueError("the CSV needs a header with person_id, external_id or name (and seat)")
    rows = []
    for number, raw in enumerate(reader, start=2):
        if number > MAX_IMPORT_ROWS + 1:
            raise ValueError(f"too many rows (limit {MAX_IMPORT_ROWS})")
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        rows.append({"line": number, "person_id": row.get("person_id", ""),
                     "external_id": row.get("external_id", ""), "name": row.get("name", ""),
                     "seat": row.get("seat", "")})
    return rows


def match_people(rows: list[dict], people: list[dict]) -> tuple[list[dict], list[str]]:
    """Roster entries for the rows that name a known person, and a problem per other row."""
    by_id = {p["id"]: p for p in people}
    by_ext = {p.get("external_id"): p for p in people if p.get("external_id")}
    by_name = {p["name"].casefold(): p for p in people}
    entries, problems, seen = [], [], set()
    for row in rows:
        person = (by_id.get(row["person_id"]) or by_ext.get(row["external_id"])
                  or by_name.get(row["name"].casefold()))
        if person is None:
            problems.append(f"line {row['line']}: no such person "
                            f"({row['person_id'] or row['external_id'] or row['name'] or 'empty'})")
        elif person["id"] in seen:
            problems.append(f"line {row['line']}: {person['name']} is listed twice")
        else:
            seen.add(person["id"])
            entries.append({"person_id": person["id"], "seat": row["seat"] or None})
    return entries, problems
