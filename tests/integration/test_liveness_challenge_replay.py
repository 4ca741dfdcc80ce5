"""A replayed video of an enrolled person, under a session that requires the head-pose
challenge, through the real device loop (App: real models, real store, MockFactory pins):
the video blinks and talks but cannot follow random prompts, so the track becomes a
``spoof`` review item and nobody is marked present. The same clip under ``blink`` IS
marked present (tests/integration/test_loop_run_device.py), which is the point."""

from __future__ import annotations

import random

import pytest

from firmware.runtime.app import App
from firmware.store import Store
from tests.integration.test_loop_run_device import (CLIP, GREEN, RED, enrol_and_schedule, factory,  # noqa: F401
                                                    make_config, split_clip, states)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("seed", [11])
def test_replayed_clip_fails_the_challenge_and_is_a_spoof(tmp_path, shared_data, built_models, factory, seed):
    later = split_clip(shared_data / CLIP, tmp_path / "replay")  # 6 s of the talking head, replayed
    cfg = make_config(tmp_path, built_models)
    cfg.camera.replay_loop = True  # a phone playing the video over and over
    cfg.liveness.challenge_tries = 1
    cfg.liveness.challenge_step_s = 2.0
    session_id = enrol_and_schedule(cfg, later)
    with Store(cfg.paths.data_dir) as store:
        store.sessions.set_policy(session_id, "challenge", by="exam-office")
    app = App(cfg, source=str(tmp_path / "replay"), max_frames=250, pin_factory=factory)  # 10 s at 25 fps
    seen: list[dict] = []
    with app:
        device = app.device
        device.sessions.rng = random.Random(seed)
        device.sessions.invalidate()
        on_frame = device.on_frame

        def watch(frame, overlays):
            on_frame(frame, overlays)
            seen.append(device.kiosk_state())
        device.on_frame = watch
        assert app.run() == "max_frames"
        status = device.status()
    assert status["liveness_policy"] == "challenge"
    prompts = [k["challenge"]["code"] for k in seen if k.get("challenge")]
    assert {"turn_left", "turn_right", "look_up", "look_down", "blink"} & set(prompts), "no prompt was shown"
    assert seen[-1]["state"] == "spoof"
    with Store(cfg.paths.data_dir) as store:
        assert store.attendance.for_session(session_id) == []
        spoofs = store.unknowns.list(kind="spoof")
        assert len(spoofs) == 1 and spoofs[0]["session_id"] == session_id
    assert True in states(factory, RED)
    assert states(factory, GREEN) == [False]
