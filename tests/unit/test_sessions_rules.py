"""Pure session rules: transitions, late/present, closing summary."""

import pytest

from firmware.domain import sessions as rules
from firmware.errors import SessionError

ALLOWED = {("scheduled", "in_progress"), ("scheduled", "cancelled"),
           ("in_progress", "completed"), ("in_progress", "cancelled")}


@pytest.mark.parametrize("current", rules.STATES)
@pytest.mark.parametrize("new", rules.STATES)
def test_every_transition_follows_the_table(current, new):
    if (current, new) in ALLOWED:
        rules.check_transition(current, new)
    else:
        with pytest.raises(SessionError, match="cannot become"):
            rules.check_transition(current, new)


def test_unknown_state_and_status_are_rejected():
    with pytest.raises(SessionError, match="unknown session state"):
        rules.check_transition("scheduled", "paused")
    with pytest.raises(SessionError, match="unknown attendance status"):
        rules.check_status("here")
    assert isinstance(SessionError("x"), ValueError)


def test_late_only_strictly_after_late_after():
    assert rules.arrival_status(100.0, 100.0) == "present"
    assert rules.arrival_status(100.001, 100.0) == "late"
    assert rules.arrival_status(5.0, None) == "present"


def test_times_must_be_ordered():
    rules.check_times(0, 10, 5)
    with pytest.raises(SessionError):
        rules.check_times(10, 10, None)
    with pytest.raises(SessionError):
        rules.check_times(0, 10, 11)


def test_summary_counts_absentees_and_off_roster():
    records = [{"person_id": "a", "status": "present"}, {"person_id": "b", "status": "late"},
               {"person_id": "z", "status": "present"}]
    summary = rules.summarise(["a", "b", "c", "c"], records)
    assert summary["counts"] == {"present": 2, "late": 1, "absent": 1, "excused": 0}
    assert summary["lists"]["absent"] == ["c"]
    assert summary["off_roster"] == ["z"]
    assert summary["roster_size"] == 3
    assert not rules.can_record("scheduled") and rules.can_record("in_progress")
