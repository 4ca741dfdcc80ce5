"""The fleet benchmark's verdict: which results count as meeting the targets."""

from firmware.bench.fleet import MIN_BURST_EVENTS, TARGET_P99_MS, verdict


def result(*, burst_events, events_per_s, steady_offered=1000.0, steady_p99=500.0, lost=0, dups=0):
    return {"burst": {"events": burst_events}, "events_per_s": events_per_s, "lost": lost,
            "duplicates_stored": dups, "plan": {"rate": 1000.0},
            "offered_per_s_achieved_steady": steady_offered, "direct_offered_per_s": 0,
            "capture_to_commit_ms": {"steady": {"p99": steady_p99}, "direct": {}}}


def test_a_large_fast_burst_at_full_rate_meets_every_target():
    assert verdict(result(burst_events=MIN_BURST_EVENTS, events_per_s=3500.0)) == (True, [])


def test_a_tiny_burst_never_counts_as_throughput_however_fast_it_committed():
    ok, misses = verdict(result(burst_events=36, events_per_s=90000.0))
    assert not ok and misses[0].startswith("events_per_s not measured: a burst of 36 events")


def test_slow_ingest_lost_and_duplicated_events_and_late_commits_are_each_named():
    ok, misses = verdict(result(burst_events=10000, events_per_s=2000.0, lost=2, dups=1,
                                steady_p99=TARGET_P99_MS + 1))
    assert not ok
    assert [m.split()[0] for m in misses] == ["events_per_s", "lost", "duplicates_stored", "steady"]


def test_no_phase_at_the_offered_rate_is_a_miss_not_a_pass():
    ok, misses = verdict(result(burst_events=10000, events_per_s=4000.0, steady_offered=600.0))
    assert not ok and misses[0].startswith("no phase offered 1000 events/s")
