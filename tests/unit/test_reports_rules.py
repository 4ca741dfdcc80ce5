"""Report rules (pure) and the server-rendered SVG chart."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from console.charts import trend_svg
from firmware.domain.reports import rate, roster_report


def _session(sid: str, start: float, entries: list[tuple[str, str | None, str]], state="completed") -> dict:
    return {"id": sid, "name": sid, "day": f"2026-09-{int(start):02d}", "start_ts": start,
            "state": state, "room": "lab",
            "roster_entries": [{"person_id": p, "seat": seat, "name": name, "external_id": None}
                               for p, seat, name in entries]}


def test_rates_excused_off_roster_flags_and_seat_order():
    roster = [("a", "10", "Ann"), ("b", "2", "Ben"), ("c", None, "Cy")]
    sessions = [_session("s2", 2, roster), _session("s1", 1, roster),
                _session("s3", 3, roster, state="in_progress")]  # not counted: still running
    marks = {"s1": {"a": "present", "b": "late", "c": "excused", "z": "present"},
             "s2": {"a": "present", "c": "excused"}}  # b unmarked in s2: absent
    report = roster_report(sessions, marks, {"a": {"name": "Ann Lee", "external_id": "S1"}}, 0.75)
    assert [s["session_id"] for s in report["sessions"]] == ["s1", "s2"]
    people = {p["person_id"]: p for p in report["people"]}
    assert [p["person_id"] for p in report["people"]] == ["b", "a", "z", "c"]  # seats 2, 10, then by name
    assert people["a"]["name"] == "Ann Lee" and people["a"]["external_id"] == "S1"  # current wins
    assert people["b"]["counts"] == {"present": 0, "late": 1, "absent": 1, "excused": 0}
    assert people["b"]["rate"] == 0.5 and people["b"]["flagged"]
    assert people["c"]["rate"] is None and not people["c"]["flagged"]  # excused twice
    assert people["z"]["sessions"] == 1 and people["z"]["rate"] == 1.0  # off the roster, came
    assert report["totals"] == {"present": 3, "late": 1, "absent": 1, "excused": 2}
    assert report["rate"] == rate(report["totals"]) == 0.8 and report["flagged"] == 1
    assert roster_report([], {}, {})["people"] == []


def test_trend_svg_is_well_formed_escaped_and_marks_low_points():
    svg = trend_svg([("<b>1</b>", 0.9), ("day 2", None), ("day 3", 0.5)], 0.8, 'rate "&" <chart>')
    root = ET.fromstring(svg)  # parses: labels are escaped
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg" and "<b>" not in svg
    assert len(root.findall(f"{ns}polyline")) == 1
    dots = root.findall(f"{ns}circle")
    assert [d.get("class") for d in dots] == ["dot", "dot low"]  # the None point is skipped
    assert "no completed sessions" in trend_svg([], 0.8, "empty")
