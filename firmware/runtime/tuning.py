"""Every recognition threshold and engine setting the running device uses, in one place.

Operating point: ``recognition.security_level`` (low | normal | high) names a target
number of false accepts per impostor track (:data:`SECURITY_LEVELS`); the threshold that
meets it depends on the embedder and on how many people are in scope, and comes from the
impostor-track calibration in ``models/calibration.toml`` (:mod:`firmware.domain.calibration`,
recomputed with ``rollcall bench door --calibrate``). ``recognition.match_threshold`` is
the expert override (a raw cosine, used as is); an embedder without a calibration falls
back to its manifest ``default_threshold``. Nothing else in the firmware reads
``recognition.match_threshold`` or ``recognition.margin`` directly.
"""

from __future__ import annotations

import logging
import random
import tomllib
from functools import lru_cache
from importlib import resources

from firmware.config import Config
from firmware.domain.calibration import Calibration, SurvivalCurve
from firmware.domain.decisions import DecisionEngine
from firmware.domain.challenge import make_tracker
from firmware.domain.evidence import Candidates, EvidenceRule, QualitySpec
from firmware.inference.embedder import default_margin, default_threshold, same_person_threshold

logger = logging.getLogger(__name__)

# A track's new embedding this far below the match threshold is another face (a swap):
# frames of one face score well above the threshold, different people (dlib ~0.8) below.
SWAP_MARGIN = 0.07

#: Target false accepts per impostor track (one visit of a person who is not enrolled).
SECURITY_LEVELS = {"low": 1e-3, "normal": 1e-4, "high": 1e-5}
#: Roster size assumed where no roster is at hand (swap check, console warnings).
REFERENCE_PEOPLE = 100
#: Evidence amounts of the track rule; the calibration was fitted with these values.
ACCEPT_WEIGHT = 1.5
GOOD_QUALITY = 0.5
MAX_FRAMES = 12
#: Embeddings taken back to back when a track starts (then one per ``recheck_s`` until
#: liveness passes, then every frame until decided).
FIRST_EMBEDDINGS = 3
CALIBRATION_FILE = "calibration.toml"

__all__ = ["ACCEPT_WEIGHT", "GOOD_QUALITY", "REFERENCE_PEOPLE", "SECURITY_LEVELS", "SESSION_POLICIES", "SWAP_MARGIN",
           "calibration", "configure_engine", "evidence_rule", "loosest_threshold", "match_margin",
           "match_threshold", "quality_spec", "same_person_threshold", "set_liveness_policy", "threshold_warning"]


def _read_calibration_text() -> str | None:
    try:
        return resources.files("models").joinpath(CALIBRATION_FILE).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return None


def parse_calibration(text: str, model_id: str) -> Calibration | None:
    """The calibration of ``model_id`` from the TOML text (None when it has none)."""
    entry = tomllib.loads(text).get(model_id)
    if not entry:
        return None
    curves = tuple(SurvivalCurve(int(c["templates"]), tuple(c["scores"]), tuple(c["log10_survival"]),
                                 float(c["tail_slope"])) for c in entry.get("curves", []))
    return Calibration(model_id, curves) if curves else None


@lru_cache(maxsize=8)
def calibration(model_id: str) -> Calibration | None:
    """The impostor-track calibration of ``model_id`` from ``models/calibration.toml``."""
    text = _read_calibration_text()
    try:
        return parse_calibration(text, model_id) if text else None
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        logger.error("models/%s is unreadable (%s); using the manifest thresholds", CALIBRATION_FILE, exc)
        return None


def match_threshold(config: Config, people: int | None = None, templates_per_person: float = 1.0) -> float:
    """The track score (cosine) to accept with ``people`` enrolled in scope (None: a
    reference roster of :data:`REFERENCE_PEOPLE`): the config's raw override, else the
    calibrated threshold for the security level, else the manifest default."""
    if config.recognition.match_threshold is not None:
        return config.recognition.match_threshold
    model_id = config.recognition.embedder
    cal = calibration(model_id)
    if cal is None:
        return default_threshold(model_id)
    far = SECURITY_LEVELS[config.recognition.security_level]
    return cal.threshold(far, REFERENCE_PEOPLE if people is None else people, templates_per_person)


def loosest_threshold(model_id: str, level: str = "low") -> float | None:
    """The lowest threshold ``level`` ever uses for ``model_id`` (one person enrolled from
    one photo); a raw threshold below it is looser than ``level`` for every roster. None
    without a calibration."""
    cal = calibration(model_id)
    return None if cal is None else cal.threshold(SECURITY_LEVELS[level], 1, 1.0)


def threshold_warning(model_id: str, threshold: float | None) -> str:
    """A warning for an admin who sets a raw ``threshold`` looser than security level
    ``low`` ("" when it is not, or when nothing is set)."""
    if threshold is None:
        return ""
    low = loosest_threshold(model_id)
    if low is None:
        low = default_threshold(model_id) - 0.05
    if threshold >= low:
        return ""
    return (f"match threshold {threshold:g} is looser than security level 'low' ({low:.3f} for {model_id} "
            f"even with one person enrolled): expect more than 1 false accept per 1,000 visits of "
            f"people who are not enrolled. Leave it empty to use recognition.security_level.")


def match_margin(config: Config) -> float:
    """How far the best person must beat the runner-up: the config's, else the manifest's."""
    if config.recognition.margin is not None:
        return config.recognition.margin
    return default_margin(config.recognition.embedder)


def evidence_rule(config: Config, gallery: Candidates | None) -> EvidenceRule:
    """The track rule for ``gallery`` (its people count and templates per person set the
    calibrated threshold)."""
    people = len(gallery.people) if gallery is not None else None
    rows = getattr(gallery, "size", people)
    per_person = (rows / people) if people else 1.0
    return EvidenceRule(threshold=match_threshold(config, people, per_person), margin=match_margin(config),
                        accept_weight=ACCEPT_WEIGHT, unknown_frames=config.recognition.embeddings_per_track,
                        good_quality=GOOD_QUALITY, max_frames=MAX_FRAMES)


def quality_spec(config: Config) -> QualitySpec:
    """Per-frame quality weights (see :class:`firmware.domain.evidence.QualitySpec`): the
    gate's limits come from the config, full quality at 1.75x the minimum face width and
    4x the minimum sharpness."""
    det, live = config.detection, config.liveness
    return QualitySpec(min_face_px=det.min_face_px, full_face_px=1.75 * det.min_face_px,
                       min_sharpness=live.min_sharpness, full_sharpness=max(4.0 * live.min_sharpness, 1.0),
                       max_yaw_deg=live.max_yaw_deg, max_pitch_deg=live.max_pitch_deg,
                       min_detector=det.score_threshold, full_detector=min(0.95, det.score_threshold + 0.25))


def configure_engine(engine: DecisionEngine, config: Config, rng: random.Random | None = None) -> None:
    """Apply decision and liveness settings (also on reload: new tracks use them)."""
    engine.cooldown_s = config.decisions.cooldown_s
    engine.retry_after_s = config.decisions.retry_after_s
    engine.embeddings_per_track = min(FIRST_EMBEDDINGS, config.recognition.embeddings_per_track)
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
