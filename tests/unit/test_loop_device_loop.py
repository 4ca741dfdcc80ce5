"""DeviceLoop with a fake analyser and camera (unit): decisions reach the sink once, a face
swap gets a fresh track, the loop ends on replay end / max frames, watchdog only when healthy."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from firmware.domain.decisions import DecisionEngine, Outcome, Scope
from firmware.domain.evidence import EvidenceRule
from firmware.domain.matching import Gallery
from firmware.domain.types import Detection, Frame
from firmware.hal.slot import LatestSlot
from firmware.runtime.loop import DeviceLoop

ALICE = np.eye(8, dtype=np.float32)[1]
BOB = np.eye(8, dtype=np.float32)[2]


@dataclass
class Gate:
    ok: bool = True


@dataclass
class Live:
    verdict: str
    prompt: str = ""
    blinks: int = 0
    required_blinks: int = 1


class BlinkAfter:
    """Fake liveness: live after ``n`` updates."""

    def __init__(self, n=2):
        self.n = n

    def update(self, ts, openness, gate):
        self.n -= 1
        return Live("live" if self.n <= 0 else "pending")


class FakeAnalyser:
    """One face at a fixed box; ``who`` gives the embedding per frame index (fake, unit only)."""

    def __init__(self, who):
        self.who = who
        self.embeds = 0

    def detect(self, frame):
        if self.who(frame.index) is None:
            return []
        return [Detection(np.array([100, 100, 200, 200], np.float32), 0.9, np.zeros((6, 2), np.float32))]

    def measure(self, frame, det):
        return object(), 0.3, Gate()

    def quality(self, det, landmarks, gate):
        return 1.0

    def embed(self, frame, landmarks):
        self.embeds += 1
        return self.who(frame.index)


class Sink:
    def __init__(self):
        self.decisions, self.frames, self.housekeeping_calls = [], 0, 0
        self.calls: list[tuple[str, int]] = []

    def on_decision(self, decision, frame, box):
        self.decisions.append(decision)
        self.calls.append(("decision", frame.index))

    def on_frame_start(self, frame):
        self.calls.append(("start", frame.index))

    def on_frame(self, frame, overlays):
        self.frames += 1
        self.overlays = overlays
        self.calls.append(("done", frame.index))

    def housekeeping(self):
        self.housekeeping_calls += 1


class Camera:
    def __init__(self):
        self.slot = LatestSlot()
        self.state = "running"


GALLERY = Gallery(["alice", "bob"], np.stack([ALICE, BOB]), dtype=np.float32)
RULE = EvidenceRule(threshold=0.9, margin=0.02, accept_weight=1.5, unknown_frames=2)


def frame(i, fps=10.0):
    return Frame(np.zeros((300, 300, 3), np.uint8), i / fps, 1000 + i / fps, i)


def make_loop(who, liveness=None, **kw):
    engine = DecisionEngine(embeddings_per_track=2, liveness_factory=liveness)
    engine.set_scope(Scope("s1", GALLERY, rule=RULE, key="s1"))
    sink = Sink()
    loop = DeviceLoop(camera=Camera(), engine=engine, sink=sink, analyser=FakeAnalyser(who), **kw)
    return loop, sink


def test_one_decision_per_person_and_embeddings_stop_after_it():
    loop, sink = make_loop(lambda i: ALICE)
    for i in range(1, 20):
        loop.process(frame(i))
    assert [(d.outcome, d.person_id) for d in sink.decisions] == [(Outcome.ACCEPTED, "alice")]
    assert loop.analyser.embeds == 2  # embeddings_per_track, none after the decision
    assert sink.overlays[0].stage == "accepted" and sink.overlays[0].label == "alice"
    assert loop.stats.frames == 19 and loop.stats.outcomes == {"accepted": 1}
    assert loop.stats.latencies_s[0] == 0.1  # second frame: two embeddings


def test_face_swap_gets_a_new_track_and_fresh_liveness():
    who = lambda i: ALICE if i < 4 else BOB  # noqa: E731 - bob steps into alice's box at frame 4
    loop, sink = make_loop(who, liveness=lambda: BlinkAfter(3), )
    loop.engine.recheck_s = 0.0  # re-embed every frame so the swap is seen at once
    for i in range(1, 4):
        loop.process(frame(i))
    first_track = next(iter(loop.engine.tracks))
    assert sink.decisions and sink.decisions[0].person_id == "alice"
    loop.engine.tracks[first_track].decided = None  # pretend alice was still undecided
    loop.engine.tracks[first_track].person_id = None
    loop.process(frame(4))
    [state] = loop.engine.tracks.values()
    assert state.track_id != first_track
    assert state.verdict == "pending"  # bob did not inherit alice's liveness
    for i in range(5, 10):
        loop.process(frame(i))
    assert [d.person_id for d in sink.decisions] == ["alice", "bob"]
    assert sink.decisions[1].track_id != first_track


def test_dead_tracks_are_forgotten():
    loop, sink = make_loop(lambda i: ALICE if i < 3 else None)
    for i in range(1, 40):
        loop.process(frame(i))
    assert loop.engine.tracks == {}


class Notifier:
    def __init__(self):
        self.ready_calls, self.ticks = 0, []

    def ready(self, status=""):
        self.ready_calls += 1

    def tick(self, healthy):
        self.ticks.append(healthy)


def test_run_stops_at_max_frames_and_pings_watchdog():
    notifier = Notifier()
    loop, sink = make_loop(lambda i: ALICE, notifier=notifier, max_frames=3)
    feeder = threading.Thread(target=lambda: [loop.camera.slot.put(frame(i), block=True, timeout=2)
                                              for i in range(1, 4)])
    feeder.start()
    assert loop.run(threading.Event()) == "max_frames"
    feeder.join()
    assert notifier.ready_calls == 1 and notifier.ticks[-1] is True
    assert sink.housekeeping_calls >= 1


def test_run_ends_when_replay_ends_and_on_stop():
    loop, _ = make_loop(lambda i: ALICE)
    loop.camera.state = "ended"
    loop.camera.slot.close()
    assert loop.run(threading.Event()) == "replay_ended"
    loop, _ = make_loop(lambda i: ALICE)
    stop = threading.Event()
    stop.set()
    assert loop.run(stop) == "stopped"


def test_health_rules():
    now = [100.0]
    loop, _ = make_loop(lambda i: ALICE, clock=lambda: now[0])
    assert not loop.healthy()  # camera "running", loop never ran
    loop._started_at = now[0]
    assert loop.healthy()  # grace period for the first frame (model warm-up)
    now[0] += 30
    assert not loop.healthy()  # ... but not forever
    loop.process(frame(1))
    assert loop.healthy()
    now[0] += 30
    assert not loop.healthy()  # stalled capture: stop pinging, systemd restarts us
    loop.camera.state = "no_camera"
    assert loop.healthy()  # idle for a reason the status explains


def test_no_models_means_no_detection_but_frames_flow():
    engine = DecisionEngine()
    sink = Sink()
    loop = DeviceLoop(camera=Camera(), engine=engine, sink=sink, analyser=None)
    assert loop.process(frame(1)) == [] and sink.frames == 1


def test_a_failing_frame_is_logged_once_and_skipped(caplog):
    bad = {2, 3, 4}

    class Flaky(FakeAnalyser):
        def detect(self, frame):
            if frame.index in bad:
                raise ValueError("corrupt frame")
            return super().detect(frame)

    loop, sink = make_loop(lambda i: ALICE, max_frames=3)
    loop.analyser = Flaky(lambda i: ALICE)
    for i in range(1, 7):
        loop.camera.slot.put(frame(i), block=True, timeout=0.01) or None
        loop._process_safely(loop.camera.slot.get(0.01))
    assert loop.stats.errors == 3 and loop.stats.frames == 3
    messages = [r.getMessage() for r in caplog.records]
    assert sum("could not be processed" in m for m in messages) == 1
    assert sum("processed again" in m for m in messages) == 1


def test_the_sink_hears_of_each_frame_before_its_decisions_and_after_them():
    """on_frame_start comes first, so the device's live view lets go of the previous frame
    before this one is processed (one full-resolution frame in memory, not two)."""
    loop, sink = make_loop(lambda i: ALICE)
    for i in (1, 2):
        loop.process(frame(i))
    assert sink.calls == [("start", 1), ("done", 1), ("start", 2), ("decision", 2), ("done", 2)]
