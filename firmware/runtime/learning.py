"""Learning at the door (``recognition.learn_at_door``): after a confident, live,
well-margined accept, keep the best-quality frame of the track as an extra template of
the person, tagged ``source = "door"``.

Safety: only accepted / already decisions (a spoof never reaches them), never with
liveness off, only when :func:`firmware.domain.evidence.learnable` says the score cleared
the threshold and the runner-up by a wide margin; at most
``recognition.door_templates_max`` door templates per person (the oldest is dropped).
Everything is reversible: door templates are listed and removed through the control API
(``GET /v1/people/<id>/templates``, ``DELETE /v1/people/<id>/templates/<embedding_id>``).
"""

from __future__ import annotations

import logging
from typing import Any

from firmware.config import Config
from firmware.domain.decisions import Decision, Outcome
from firmware.domain.evidence import EvidenceRule, learnable
from firmware.errors import RollcallError

logger = logging.getLogger(__name__)


class DoorLearner:
    """Adds door templates to the store (``store.people``)."""

    def __init__(self, config: Config, store: Any) -> None:
        self.config = config
        self.store = store

    def wants(self, decision: Decision, rule: EvidenceRule) -> bool:
        """True when this decision may teach the gallery a new template."""
        cfg = self.config
        return (cfg.recognition.learn_at_door and cfg.liveness.policy != "off"
                and decision.outcome in (Outcome.ACCEPTED, Outcome.ALREADY)
                and decision.person_id is not None and decision.best_frame is not None
                and learnable(decision.score, decision.runner_up, rule))

    def learn(self, decision: Decision, rule: EvidenceRule) -> dict | None:
        """Store the decision's best frame as a door template; returns its metadata, or
        None when the decision is not learnable or the store refused it."""
        if not self.wants(decision, rule):
            return None
        people, model_id = self.store.people, self.config.recognition.embedder
        try:
            door = [t for t in people.templates(decision.person_id, source="door") if t["model_id"] == model_id]
            for old in door[: max(0, len(door) - self.config.recognition.door_templates_max + 1)]:
                people.remove_embedding(decision.person_id, old["embedding_id"])
            meta = people.add_embedding(decision.person_id, decision.best_frame, model_id, source="door")
        except (RollcallError, OSError, ValueError) as exc:
            logger.warning("door template for %s not kept: %s", decision.person_id, exc)
            return None
        logger.info("kept a door template for %s (score %.3f)", decision.person_id, decision.score)
        return meta
