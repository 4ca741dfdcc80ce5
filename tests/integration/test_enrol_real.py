"""Enrolment rules with the real pipeline on real photos, and `rollcall enroll` end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.cli import main
from firmware.domain.enrolment import ENROL_DETECTOR
from firmware.runtime.enrol import check_and_embed
from firmware.inference.embedder import same_person_threshold
from firmware.inference.pipeline import FacePipeline

pytestmark = pytest.mark.integration
EMBEDDER = "dlib_resnet_int8"


@pytest.fixture(scope="module")
def pipeline(built_models):
    for name in (f"{ENROL_DETECTOR}.tflite", "face_mesh.tflite", f"{EMBEDDER}.tflite"):
        if not (built_models / name).is_file():
            pytest.skip(f"{name} not built in {built_models}: run `rollcall models build`")
    with FacePipeline(built_models, detector_id=ENROL_DETECTOR, embedder_id=EMBEDDER, min_face_px=24,
                      max_faces=10) as p:
        yield p


@pytest.fixture(scope="module")
def photos(shared_data) -> dict[str, Path]:
    lfw = shared_data / "faces-small" / "lfw10"
    knn = shared_data / "faces-small" / "knn_examples"
    return {"blair1": lfw / "Tony_Blair" / "Tony_Blair_0001.jpg", "blair2": lfw / "Tony_Blair" / "Tony_Blair_0002.jpg",
            "blair3": lfw / "Tony_Blair" / "Tony_Blair_0003.jpg", "putin": lfw / "Vladimir_Putin" / "Vladimir_Putin_0001.jpg",
            "group": knn / "test" / "obama_and_biden.jpg", "obama": knn / "train" / "obama" / "obama.jpg"}


def test_rejects_group_photo_and_different_person(pipeline, photos):
    names = ["blair1", "blair2", "group", "blair3", "putin"]
    results = check_and_embed([photos[n].read_bytes() for n in names], None, [], pipeline,
                              same_person_threshold=same_person_threshold(EMBEDDER))
    verdict = dict(zip(names, results))
    assert [verdict[n].status for n in ("blair1", "blair2", "blair3")] == ["accepted"] * 3
    assert verdict["group"].status == "rejected" and "2 faces" in verdict["group"].message
    assert verdict["putin"].status == "rejected" and "same person" in verdict["putin"].message
    assert verdict["putin"].score < same_person_threshold(EMBEDDER) < verdict["blair1"].score


def test_enroll_cli_stores_accepted_photos(built_models, pipeline, photos, tmp_path, capsys):
    data = tmp_path / "data"
    args = ["-q", "enroll", "--person", "tblair", "--name", "Tony Blair", "--data-dir", str(data),
            "--models-dir", str(built_models), "--config", str(tmp_path / "none.toml")]
    assert main(args + [str(photos["blair1"])]) == 2  # no legal basis given or configured
    assert "legal basis" in capsys.readouterr().err and not data.exists()
    args += ["--basis", "consent", "--by", "registrar"]
    assert main(args + [str(photos["blair1"]), str(photos["blair2"]), str(photos["putin"])]) == 0
    out = capsys.readouterr().out
    assert "2 of 3 photos enrolled for tblair" in out and "rejected" in out
    assert main(args + [str(photos["blair1"]), str(photos["blair3"])]) == 0
    out = capsys.readouterr().out
    assert "duplicate" in out and "1 of 2 photos enrolled" in out
    from firmware.store import Store
    with Store(data) as store:
        ids, matrix = store.people.embeddings(EMBEDDER, ["tblair"])
        assert ids == ["tblair"] * 3 and matrix.shape == (3, 128)
        assert len(store.people.photos("tblair")) == 3
        assert store.people.get("tblair")["consent"]["recorded_by"] == "registrar"
