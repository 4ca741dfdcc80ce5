"""`rollcall enroll --person ID --name NAME IMG...`: enrol a person from photos.

Prints one line per photo (accepted / rejected / duplicate, with the reason) and stores
the accepted embeddings (with a JPEG of the face) in the firmware's data dir. Run it while
the firmware is stopped: the firmware is the single writer of the data dir.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np

from firmware.config import load_config
from firmware.domain.enrolment import ENROL_DETECTOR, PhotoResult, check_and_embed
from firmware.errors import EnrolmentError
from firmware.store.people import has_basis

logger = logging.getLogger(__name__)

def register(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--person", required=True, help="person id (letters, digits, . _ -)")
    parser.add_argument("--name", required=True, help="the person's name as shown in the console")
    parser.add_argument("--basis", choices=["consent", "contract", "legal_obligation"],
                        help="legal basis for keeping their face data (required unless "
                             "privacy.default_basis is set in the config)")
    parser.add_argument("--by", default=None, help="who recorded the basis (default: $USER)")
    parser.add_argument("--config", help="config file (default: $ROLLCALL_CONFIG or /etc/rollcall/config.toml)")
    parser.add_argument("--data-dir", type=Path, help="data dir (default: paths.data_dir of the config)")
    parser.add_argument("--models-dir", type=Path, help="built models (default: paths.models_dir of the config)")
    parser.add_argument("--embedder", help="embedder model id (default: recognition.embedder of the config)")
    parser.add_argument("images", nargs="+", type=Path, help="photos (JPEG or PNG), one person each")
    parser.set_defaults(func=run)


def _read(paths: list[Path]) -> tuple[list[Path], list[bytes]]:
    """(readable paths, their contents); unreadable files are reported and left out."""
    ok, contents = [], []
    for path in paths:
        try:
            contents.append(path.read_bytes())
            ok.append(path)
        except OSError as exc:
            print(f"rejected   {path}: cannot read it ({exc.strerror})")
    return ok, contents


def format_result(path: Path, result: PhotoResult) -> str:
    """One human line for a photo's verdict."""
    if result.status == "accepted":
        extra = f" (similarity to the other photos {result.score:.2f})" if result.score is not None else ""
        return f"accepted   {path}{extra}"
    return f"{result.status:<10} {path}: {result.message}"


def _existing(store, person_id: str, model_id: str) -> tuple[np.ndarray | None, list[str]]:
    if store.people.get(person_id) is None:
        return None, []
    _, matrix = store.people.embeddings(model_id, [person_id])
    shas = [p["photo_sha256"] for p in store.people.photos(person_id) if p.get("photo_sha256")]
    return matrix, shas


def _basis(args: argparse.Namespace, default_basis: str | None) -> dict:
    """``{"basis", "by"}`` for this enrolment; EnrolmentError when none is given or configured."""
    basis = args.basis or default_basis
    if basis is None:
        raise EnrolmentError("a legal basis for the face data is required: pass --basis consent|"
                             "contract|legal_obligation (or set privacy.default_basis)")
    return {"basis": basis, "by": args.by or os.environ.get("USER") or "cli"}


def _save(store, args: argparse.Namespace, model_id: str, paths: list[Path], results: list[PhotoResult],
          consent: dict) -> None:
    """Create the person if needed (only when a photo is accepted), store accepted photos, print."""
    person = store.people.get(args.person)
    if any(r.accepted for r in results) and person is None:
        store.people.add(args.person, args.name, consent=consent)
        print(f"new person {args.person} ({args.name}), basis {consent['basis']} recorded by {consent['by']}")
    elif person is not None and args.basis and not has_basis(person):
        store.people.set_consent(args.person, consent["basis"], consent["by"])
    for path, result in zip(paths, results):
        if result.accepted:
            store.people.add_embedding(args.person, result.embedding, model_id,
                                       photo_sha256=result.sha256, photo_jpeg=result.face_jpeg)
        print(format_result(path, result))


def run(args: argparse.Namespace) -> int:
    from firmware.inference.embedder import same_person_threshold
    from firmware.inference.pipeline import FacePipeline
    from firmware.store import Store

    config = load_config(args.config)
    consent = _basis(args, config.privacy.default_basis)
    data_dir = args.data_dir or config.paths.data_dir
    models_dir = args.models_dir or config.paths.models_dir
    model_id = args.embedder or config.recognition.embedder
    with FacePipeline(models_dir, detector_id=ENROL_DETECTOR, embedder_id=model_id, min_face_px=24,
                      score_threshold=config.detection.score_threshold, max_faces=10) as pipeline, \
            Store(data_dir, privacy=config.privacy) as store:
        existing, shas = _existing(store, args.person, model_id)
        paths, contents = _read(args.images)
        results = check_and_embed(contents, existing, shas, pipeline,
                                  same_person_threshold=same_person_threshold(model_id))
        _save(store, args, model_id, paths, results, consent)
    accepted = sum(r.accepted for r in results)
    print(f"{accepted} of {len(args.images)} photos enrolled for {args.person} with {model_id}")
    return 0 if accepted or (existing is not None and len(existing)) else 1
