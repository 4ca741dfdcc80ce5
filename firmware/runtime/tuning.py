"""Every recognition threshold and engine setting the running device uses, in one place.

The configured value wins; otherwise the embedder's entry in ``models/manifest.toml``
gives it. Nothing else in the firmware reads ``recognition.match_threshold`` or
``recognition.margin`` directly.
"""

from __future__ import annotations

import random

from firmware.config import Config
from firmware.domain.decisions import DecisionEngine
from firmware.domain.evidence import QualitySpec
from firmware.domain.liveness import LivenessTracker
from firmware.inference.embedder import default_margin, default_threshold, same_person_threshold

# A track's new embedding this far below the match threshold is another face (a swap):
# frames of one face score well above the threshold, different people (dlib ~0.8) below.
SWAP_MARGIN = 0.07

__all__ = ["SWAP_MARGIN", "configure_engine", "match_margin", "match_threshold", "same_person_threshold"]


def match_threshold(config: Config) -> float:
    """The cosine to accept: the config's, else the embedder manifest's default."""
    if config.recognition.match_threshold is not None:
        return config.recognition.match_threshold
    return default_threshold(config.recognition.embedder)


def match_margin(config: Config) -> float:
    """How far the best person must beat the runner-up: the config's, else the manifest's."""
    if config.recognition.margin is not None:
        return config.recognition.margin
    return default_margin(config.recognition.embedder)


def configure_engine(engine: DecisionEngine, config: Config, rng: random.Random | None = None) -> None:
    """Apply decision and liveness settings (also on reload: new tracks use them)."""
    engine.cooldown_s = config.decisions.cooldown_s
    engine.retry_after_s = config.decisions.retry_after_s
    engine.embeddings_per_track = config.recognition.embeddings_per_track
    engine.swap_cosine = match_threshold(config) - SWAP_MARGIN
    live_cfg = config.liveness
    engine.liveness_factory = None if live_cfg.policy == "off" else (lambda: LivenessTracker(live_cfg, rng))


def quality_spec(config: Config) -> QualitySpec:
    """Per-frame quality weights (see :class:`firmware.domain.evidence.QualitySpec`): the
    gate's limits come from the config, full quality at 1.75x the minimum face width and
    4x the minimum sharpness."""
    det, live = config.detection, config.liveness
    return QualitySpec(min_face_px=det.min_face_px, full_face_px=1.75 * det.min_face_px,
                       min_sharpness=live.min_sharpness, full_sharpness=max(4.0 * live.min_sharpness, 1.0),
                       max_yaw_deg=live.max_yaw_deg, max_pitch_deg=live.max_pitch_deg,
                       min_detector=det.score_threshold, full_detector=min(0.95, det.score_threshold + 0.25))
