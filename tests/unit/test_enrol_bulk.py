"""Bulk enrolment rules (firmware.domain.bulk): CSV parsing with bad rows, per-row
statuses, idempotent re-runs. Pure: the target is an in-memory double."""

from __future__ import annotations

import pytest

from firmware.domain import bulk


class MemoryTarget:
    """People in a dict; a photo's verdict is decided by its bytes (b"ok..", b"noface"...)."""

    def __init__(self) -> None:
        self.people: dict[str, dict] = {}
        self.enrolled: set[bytes] = set()
        self.calls: list[tuple] = []

    def exists(self, person_id):
        return person_id in self.people

    def create(self, person_id, name, external_id):
        self.calls.append(("create", person_id))
        self.people[person_id] = {"name": name, "external_id": external_id, "photos": 0}

    def delete(self, person_id):
        self.calls.append(("delete", person_id))
        del self.people[person_id]

    def enrol(self, person_id, photos, confirm_duplicate):
        out = []
        for data in photos:
            if data in self.enrolled:
                out.append({"ok": False, "reason": "already", "message": "already enrolled"})
            elif data.startswith(b"ok") or (data.startswith(b"dup") and confirm_duplicate):
                self.enrolled.add(data)
                self.people[person_id]["photos"] += 1
                out.append({"ok": True, "reason": "ok", "message": "ok"})
            elif data.startswith(b"dup"):
                out.append({"ok": False, "reason": "duplicate", "message": "looks like Ann (ann)"})
            else:
                out.append({"ok": False, "reason": data.decode(), "message": data.decode()})
        return out


PHOTOS = {"a1.jpg": b"ok-a1", "a2.jpg": b"ok-a2", "b.jpg": b"no_face", "c.jpg": b"two_faces",
          "d.jpg": b"dup-d", "e.jpg": b"different_person", "sub/f.jpg": b"ok-f"}


def read(name: str) -> bytes:
    return PHOTOS[name]


CSV = (b"\xef\xbb\xbfName,Photos,external_id\n"
       b"Ann Lee,a1.jpg; a2.jpg,\n"
       b"Bob,b.jpg,\n"
       b"Cy,c.jpg,S-3\n"
       b"Dee,d.jpg,\n"
       b"Eve,e.jpg;missing.jpg,\n"
       b"Fay,sub/f.jpg,\n"
       b",a1.jpg,\n"
       b"Gus,../etc/passwd,\n"
       b"Ann Lee,a2.jpg,\n"
       b"Hal,,\n"
       b"\n")


def test_parse_csv_makes_stable_ids_and_flags_bad_rows():
    rows = bulk.parse_csv(CSV)
    assert [r.person_id for r in rows[:6]] == ["ann-lee", "bob", "s-3", "dee", "eve", "fay"]
    assert rows[0].photos == ["a1.jpg", "a2.jpg"] and rows[0].line == 2
    errors = {r.line: r.error for r in rows if r.error}
    assert set(errors) == {8, 9, 10, 11}
    assert "no name" in errors[8] and "relative" in errors[9]
    assert "same person id 'ann-lee' as line 2" in errors[10] and "no photos" in errors[11]


@pytest.mark.parametrize("data,message", [
    (b"name,email\nAnn,a@b\n", "missing: photos"),
    (b"", "header row"),
    (b"\xff\xfe\x00n\x00a", "not UTF-8"),
    (b"name,photos\n" + b"x" * (bulk.MAX_CSV_BYTES + 1), "too large"),
    (b"name,photos\n" + b"".join(b"P%d,a.jpg\n" % i for i in range(bulk.MAX_ROWS + 1)), "split the file"),
])
def test_unusable_csv_files_are_refused_as_a_whole(data, message):
    with pytest.raises(bulk.BulkError, match=message):
        bulk.parse_csv(data)


def test_run_reports_each_row_and_a_rerun_changes_nothing():
    target, progress = MemoryTarget(), []
    rows = bulk.parse_csv(CSV)
    reports = bulk.run_bulk(rows, read, target, progress=lambda done, total: progress.append((done, total)))
    status = {r.line: r.status for r in reports}
    assert status == {2: "ok", 3: "no_face", 4: "two_faces", 5: "duplicate", 6: "different_person", 7: "ok",
                      8: "bad_row", 9: "bad_row", 10: "bad_row", 11: "bad_row"}
    assert "looks like Ann" in reports[3].message and reports[3].label == "duplicate"
    assert progress[-1] == (10, 10) and len(progress) == 10
    assert set(target.people) == {"ann-lee", "fay"}          # refused rows leave no empty person
    assert ("delete", "bob") in target.calls
    assert [p["reason"] for p in reports[4].photos] == ["different_person", "missing_photo"]
    again = bulk.run_bulk(rows, read, target)
    assert {r.line: r.status for r in again}[2] == "already" and {r.line: r.status for r in again}[7] == "already"
    assert target.people["ann-lee"]["photos"] == 2
    assert bulk.summary(again)["already"] == 2


def test_confirmed_duplicates_are_enrolled():
    target = MemoryTarget()
    rows = bulk.parse_csv(b"name,photos\nDee,d.jpg\n")
    assert bulk.run_bulk(rows, read, target)[0].status == "duplicate"
    assert bulk.run_bulk(rows, read, target, confirm_duplicate=True)[0].status == "ok"


def test_bench_duplicate_check_counts_caught_missed_and_false_duplicates():
    import numpy as np

    from firmware.bench.enrol import duplicate_check

    def unit(*values):
        v = np.array(values, np.float32)
        return v / np.linalg.norm(v)

    vectors = {"ann": [unit(1, 0, 0)] * 3 + [unit(1, 0.05, 0), unit(0, 0, 1)],
               "bob": [unit(0, 1, 0)] * 3 + [unit(0.05, 1, 0)],
               "cy": [unit(0, 1, 0.02)] * 3 + [unit(0, 1, 0.03)],     # looks like bob
               "dee": [unit(1, 1, 1)]}                                 # too few photos: left out
    result = duplicate_check(vectors, enrol=3, threshold=0.95)
    assert result["identities"] == 3 and result["probes"] == 4
    assert (result["caught"], result["missed"]) == (3, 1) and result["wrong_person"] == 0
    assert result["false_duplicate"] == 2          # bob's and cy's probes match each other's templates
