"""After an erasure no file under the data dir holds that person's face: real models, real
LFW photos. A walker decodes EVERY image (JPEG files, and JPEGs inside backup archives) and
embeds each face it finds, and reads EVERY base64 float32 vector in every JSON / journal
file (and inside the archives), then compares all of them with the person's embeddings.
Before the erasure the same walker must find the person in photos, templates, crops and
the backup, so the test cannot pass by looking nowhere."""

from __future__ import annotations

import base64
import binascii
import io
import re
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware.domain.enrolment import ENROL_DETECTOR
from firmware.inference.embedder import same_person_threshold
from firmware.inference.pipeline import FacePipeline
from firmware.runtime.enrol import check_and_embed
from firmware.store import Store
from firmware.store.migrate import backup

pytestmark = pytest.mark.integration

MODEL = "dlib_resnet_int8"
B64_RE = re.compile(rb"[A-Za-z0-9+/]{40,}={0,2}")


class FaceWalker:
    """Finds faces (images) and vectors (base64 float32) in a tree, archives included."""

    def __init__(self, pipeline: FacePipeline, targets: np.ndarray, threshold: float) -> None:
        self.pipeline, self.targets, self.threshold = pipeline, targets, threshold
        self.images = self.vectors = 0

    def walk(self, root: Path) -> list[str]:
        """Where the person's face was found (file, or archive!member)."""
        hits = []
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            hits += [f"{path.relative_to(root)}{h}" for h in self.scan(path.name, path.read_bytes())]
        return hits

    def scan(self, name: str, data: bytes) -> list[str]:
        if name.endswith(".tar.gz"):
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                return [f"!{m.name}{h}" for m in tar if m.isfile()
                        for h in self.scan(m.name, tar.extractfile(m).read())]
        if data[:3] == b"\xff\xd8\xff":
            return [""] if self._image_matches(data) else []
        return [""] if self._vectors_match(data) else []

    def _image_matches(self, data: bytes) -> bool:
        self.images += 1
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return False
        image = cv2.copyMakeBorder(image, 40, 40, 40, 40, cv2.BORDER_CONSTANT)  # tight crops too
        faces = self.pipeline.analyse(image)
        return any(self._close(f.embedding) for f in faces if f.embedding is not None)

    def _vectors_match(self, data: bytes) -> bool:
        dim = self.targets.shape[1]
        for token in B64_RE.findall(data):
            try:
                raw = base64.b64decode(token + b"=" * (-len(token) % 4), validate=True)
            except (binascii.Error, ValueError):
                continue
            if len(raw) == dim * 4:
                self.vectors += 1
                if self._close(np.frombuffer(raw, "<f4")):
                    return True
        return False

    def _close(self, vector: np.ndarray) -> bool:
        vector = np.asarray(vector, np.float32)
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(norm) or norm == 0:
            return False
        return float(np.max(self.targets @ (vector / norm))) >= self.threshold


@pytest.fixture(scope="module")
def pipeline(built_models):
    with FacePipeline(built_models, detector_id=ENROL_DETECTOR, embedder_id=MODEL, min_face_px=24,
                      score_threshold=0.5, max_faces=10) as pipe:
        yield pipe


def embed(pipeline, paths: list[Path]) -> list:
    """One enrolment check per photo (as a camera sighting would be: no cross-check)."""
    results = [check_and_embed([p.read_bytes()], None, [], pipeline,
                               same_person_threshold=same_person_threshold(MODEL))[0] for p in paths]
    assert all(r.accepted for r in results), [r.message for r in results]
    return results


def test_erasure_leaves_no_file_with_their_face(tmp_path, shared_data, pipeline):
    lfw = shared_data / "faces-small" / "lfw10"
    tony = sorted((lfw / "Tony_Blair").glob("*.jpg"))
    colin = sorted((lfw / "Colin_Powell").glob("*.jpg"))
    enrolled, seen_later, stranger = embed(pipeline, tony[:3]), embed(pipeline, tony[3:5]), embed(pipeline, colin[:1])
    data = tmp_path / "data"
    with Store(data) as store:  # its own run: unknowns de-duplicates faces seen within 10 min
        kept = store.unknowns.add("unknown", None, stranger[0].embedding, stranger[0].face_jpeg)
    with Store(data) as store:
        store.people.add("tony", "Tony Blair", consent={"basis": "consent", "by": "office"})
        for r in enrolled:
            store.people.add_embedding("tony", r.embedding, MODEL, r.sha256, r.face_jpeg)
        assigned = store.unknowns.add("unknown", None, seen_later[0].embedding, seen_later[0].face_jpeg,
                                      extra={"model_id": MODEL})
        store.unknowns.resolve(assigned["id"], "assign", "teacher", person_id="tony")
        store.unknowns.add("spoof", None, seen_later[1].embedding, seen_later[1].face_jpeg,
                           frame_jpeg=tony[4].read_bytes())  # never assigned: matched by face
        _, targets = store.people.embeddings(MODEL, ["tony"])
        targets = np.array(targets)
    backup(data, "pre-v2")
    walker = FaceWalker(pipeline, targets, same_person_threshold(MODEL))
    before = walker.walk(data)
    assert any(h.startswith("people/tony/photos/") for h in before)
    assert any(h.startswith("people/tony/embeddings.json") for h in before)
    assert any("/crops/" in h and not h.startswith("backups") for h in before)
    assert any(h.startswith("backups/") for h in before)

    with Store(data) as store:
        erasure = store.erase("tony", "dpo", threshold=same_person_threshold(MODEL))
        assert erasure["counts"]["embeddings"] == 4 and erasure["counts"]["crops"] == 2
        assert erasure["counts"]["frames"] == 1 and erasure["counts"]["backups"] == 1
        assert store.people.get("tony")["name"] == "Tony Blair"
        assert store.unknowns.crop_path(kept["id"]).exists()  # a stranger's crop stays
    walker.images = walker.vectors = 0
    after = walker.walk(data)
    assert after == [], f"face of the erased person still in: {after}"
    assert walker.images >= 1 and walker.vectors >= 1  # it did decode what is left
