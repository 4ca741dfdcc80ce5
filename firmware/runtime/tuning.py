"""Every recognition threshold and engine setting the running device uses, in one place.

The configured value wins; otherwise the embedder's entry in ``models/manifest.toml``
gives it. Nothing else in the firmware reads ``recognition.match_threshold`` or
``recognition.margin`` directly.
"""

from __future__ import annotations

import random

from firmware.config import Config
from firmware.domain.decisions import DecisionEngine
from firmware.domain.challenge import make_tracker
from firmware.inference.embedder import default_margin, default_threshold, same_person_threshold

# A track's new embedding this far below the match threshold is another face (a swap):
# frames of one face score well above the threshold, different people (dlib ~0.8) below.
SWAP_MARGIN = 0.07

__all__ = ["SESSION_POLICIES", "SWAP_MARGIN", "configure_engine", "set_liveness_policy", "match_margin", "match_threshold", "same_person_threshold"]


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
    set_liveness_policy(engine, config, None, rng)


SESSION_POLICIES = ("blink", "blink_challenge", "challenge")  # "off" can only come from the config file


def set_liveness_policy(engine: DecisionEngine, config: Config, policy: str | None,
                        rng: random.Random | None = None) -> str:
    """Make new tracks use ``policy`` (a session's, one of SESSION_POLICIES) or, when None,
    the config's ``liveness.policy``; returns the policy in force."""
    live_cfg = config.liveness if policy is None else config.liveness.model_copy(update={"policy": policy})
    if live_cfg.policy != engine.liveness_policy:
        engine.restart_liveness()
    engine.liveness_policy = live_cfg.policy
    engine.liveness_factory = None if live_cfg.policy == "off" else (lambda: make_tracker(live_cfg, rng))
    return live_cfg.policy
