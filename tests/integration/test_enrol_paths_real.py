"""The one enrolment path with the real models on real faces (faces-small: lfw10 and
knn_examples): bulk `rollcall enroll --csv` with a per-row report and idempotent re-runs,
duplicate identities refused unless confirmed, and an unknown face recorded with the
closest person, the score and the threshold in force, then assigned to a person as a
``device`` template through the control API."""

from __future__ import annotations

import time

import pytest

from firmware.cli import main
from firmware.config import Config
from firmware.control.client import ControlClient
from firmware.control.server import ControlServer
from firmware.domain.decisions import DecisionEngine, Outcome
from firmware.domain.enrolment import ENROL_DETECTOR
from firmware.domain.types import Frame
from firmware.inference import images
from firmware.runtime.device import Device
from firmware.runtime.enrol import Enroller
from firmware.store import Store
from tests.doubles.indicators import QuietIndicators

pytestmark = pytest.mark.integration
EMBEDDER = "dlib_resnet_int8"
LFW = "lfw10"


@pytest.fixture(scope="module")
def models(built_models):
    for name in (f"{ENROL_DETECTOR}.tflite", "face_mesh.tflite", f"{EMBEDDER}.tflite"):
        if not (built_models / name).is_file():
            pytest.skip(f"{name} not built in {built_models}: run `rollcall models build`")
    return built_models


def lfw(name: str, n: int) -> str:
    return f"{LFW}/{name}/{name}_{n:04d}.jpg"


def csv_rows() -> str:
    rows = [("Tony Blair", [lfw("Tony_Blair", i) for i in (1, 2, 3)], "", ""),
            ("Colin Powell", [lfw("Colin_Powell", i) for i in (1, 2)], "", ""),
            ("Obama and Biden", ["knn_examples/test/obama_and_biden.jpg"], "", ""),
            ("Two People", [lfw("Hugo_Chavez", 1), lfw("Jacques_Chirac", 1)], "", ""),
            ("Blair Again", [lfw("Tony_Blair", 1)], "blair-again", ""),
            ("Nobody", ["lfw10/Nobody/none.jpg"], "", ""),
            ("", [lfw("Ariel_Sharon", 1)], "", "")]
    lines = ["name,photos,person_id,external_id"]
    lines += [f"{name},{';'.join(photos)},{pid},{ext}" for name, photos, pid, ext in rows]
    return "\n".join(lines) + "\n"


def report(out: str) -> dict[str, str]:
    """{person id: label} from the CLI's report lines."""
    found = {}
    for line in out.splitlines():
        if line.startswith("line "):
            parts = line.split()
            found[parts[2]] = line.split(None, 3)[3]
    return found


def test_bulk_cli_reports_each_row_and_reruns_change_nothing(models, shared_data, tmp_path, capsys):
    photos = shared_data / "faces-small"
    csv = tmp_path / "people.csv"
    csv.write_text(csv_rows())
    data = tmp_path / "data"
    args = ["-q", "enroll", "--csv", str(csv), "--photos", str(photos), "--data-dir", str(data),
            "--models-dir", str(models), "--embedder", EMBEDDER, "--config", str(tmp_path / "none.toml"), "--basis", "consent"]
    assert main(args) == 1
    out, err = capsys.readouterr()
    rows = report(out)
    assert rows["tony-blair"].startswith("ok") and rows["colin-powell"].startswith("ok"), out
    assert rows["obama-and-biden"].startswith("two faces") and "2 faces found" in rows["obama-and-biden"]
    assert rows["two-people"].startswith("different person")
    assert rows["blair-again"].startswith("duplicate") and "looks like Tony Blair (tony-blair)" in rows["blair-again"]
    assert rows["nobody"].startswith("missing photo") and "bad row" in out
    assert "[##############################] 7/7 rows" in err
    with Store(data) as store:
        assert {p["id"] for p in store.people.list()} == {"tony-blair", "colin-powell"}
        assert len(store.people.photos("tony-blair")) == 3
        assert {p["source"] for p in store.people.photos("tony-blair")} == {"photo"}
    assert main(args) == 1
    again = report(capsys.readouterr()[0])
    assert again["tony-blair"].startswith("already enrolled") and again["colin-powell"].startswith("already")
    assert main(args + ["--confirm-duplicates"]) == 1
    assert report(capsys.readouterr()[0])["blair-again"].startswith("ok")
    with Store(data) as store:
        assert len(store.people.photos("tony-blair")) == 3 and len(store.people.photos("blair-again")) == 1


def test_a_photo_of_another_enrolled_person_is_refused_naming_them(models, shared_data, tmp_path):
    lfw10 = shared_data / "faces-small" / LFW
    config = Config()
    config.recognition.embedder = EMBEDDER
    with Store(tmp_path / "data") as store:
        enroller = Enroller(config, store, models_dir=models)
        try:
            store.people.add("tblair", "Tony Blair", consent="consent")
            blair = [(lfw10 / "Tony_Blair" / f"Tony_Blair_{i:04d}.jpg").read_bytes() for i in range(1, 7)]
            assert all(r["ok"] for r in enroller.enrol_photos("tblair", blair[:3]))
            store.people.add("other", "Someone Else", consent="consent")
            first = enroller.enrol_photos("other", [blair[0]])[0]
            assert first["reason"] == "duplicate" and first["other_person"] == "tblair"
            assert "looks like Tony Blair (tblair)" in first["message"] and first["other_score"] > 0.99
            putin = (lfw10 / "Vladimir_Putin" / "Vladimir_Putin_0001.jpg").read_bytes()
            assert enroller.enrol_photos("other", [putin])[0]["ok"], "a different person is not a duplicate"
            others = enroller.check("nobody-yet", blair[3:])
            print("other photos of Blair vs his 3 templates:",
                  [(r.reason, r.other_score and round(r.other_score, 3)) for r in others],
                  "accept threshold", round(enroller.accept_threshold, 3))
            store.people.add("twin", "A Twin", consent="consent")
            assert not enroller.enrol_photos("twin", [blair[0]])[0]["ok"]
            confirmed = enroller.enrol_photos("twin", [blair[0]], confirm_duplicate=True)[0]
            assert confirmed["ok"] and confirmed["other_person"] == "tblair"
        finally:
            enroller.close()


def test_an_unknown_face_is_kept_with_the_closest_person_score_and_threshold(models, shared_data, tmp_path):
    lfw10 = shared_data / "faces-small" / LFW
    config = Config()
    config.recognition.embedder = EMBEDDER
    config.decisions.open_door = True
    config.recognition.embeddings_per_track = 1  # one good frame may decide unknown (default 6)
    config.liveness.policy = "off"  # the Device configures its engine: this probe is one still
    config.paths.data_dir, config.paths.models_dir = tmp_path / "data", models
    with Store(config.paths.data_dir) as store:
        store.people.add("tblair", "Tony Blair", consent="consent")
        store.people.add("cpowell", "Colin Powell", consent="consent")
        engine = DecisionEngine(embeddings_per_track=1)
        device = Device(config, store=store, engine=engine, camera=None, indicators=None,
                        config_path=tmp_path / "config.toml")
        device.indicators = QuietIndicators()
        try:
            for pid, name in (("tblair", "Tony_Blair"), ("cpowell", "Colin_Powell")):
                photos = [(lfw10 / name / f"{name}_{i:04d}.jpg").read_bytes() for i in (1, 2)]
                assert all(r["ok"] for r in device.enrol_photos(pid, photos))
            device.sessions.refresh()
            image = (lfw10 / "Gerhard_Schroeder" / "Gerhard_Schroeder_0001.jpg").read_bytes()
            face = device.enroller.check("probe", [image])[0]
            decision = engine.observe(1, 1.0, embedding=face.embedding)
            assert decision is not None and decision.outcome is Outcome.UNKNOWN
            pixels = images.decode(image)
            box = device.enroller.pipeline.analyse(pixels)[0].detection.box
            device.on_decision(decision, Frame(pixels, 1.0, time.time(), 1), box)
            kept = store.unknowns.list(kind="unknown")
            extra = kept[0]["extra"]
            assert extra["closest_person_id"] in ("tblair", "cpowell")
            # the threshold in force for this scope (2 people, 2 photos each; see runtime.tuning)
            assert extra["threshold"] == round(engine.scope.rule.threshold, 4) > extra["score"] > 0
            print("unknown Schroeder: closest", extra["closest_person_id"], "score", extra["score"],
                  "threshold", extra["threshold"])
            store.people.add("gschroeder", "Gerhard Schroeder", consent="consent")
            with ControlServer(tmp_path / "control.sock", store, device) as server:
                server.start()
                answer = ControlClient(tmp_path / "control.sock", timeout=60).post(
                    f"/v1/unknowns/{kept[0]['id']}/resolve",
                    {"action": "assign", "person_id": "gschroeder", "by": "admin"})
            assert answer["resolved"]["state"] == "assigned" and answer["enrolment"]["ok"]
            assert [p["source"] for p in store.people.photos("gschroeder")] == ["device"]
        finally:
            device.enroller.close()



def test_a_small_face_from_the_door_camera_is_accepted_where_an_upload_is_not(models, shared_data, tmp_path):
    """An unknown face cropped at the door may be as small as the door recognises
    (detection.min_face_px, 64 px by default); an uploaded photo needs 80 px."""
    import cv2

    photo = images.decode((shared_data / "faces-small" / LFW / "Colin_Powell" / "Colin_Powell_0001.jpg").read_bytes())
    config = Config()
    config.recognition.embedder = EMBEDDER
    with Store(tmp_path / "data") as store:
        enroller = Enroller(config, store, models_dir=models)
        try:
            width = enroller.pipeline.analyse(photo)[0].detection.width
            scale = 70.0 / width                        # the face becomes ~70 px wide
            small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            crop = images.encode_jpeg(cv2.copyMakeBorder(small, 20, 20, 20, 20, cv2.BORDER_REPLICATE))
            store.people.add("cpowell", "Colin Powell", consent="consent")
            upload = enroller.enrol_photos("cpowell", [crop])[0]
            assert upload["reason"] == "small_face" and "need 80" in upload["message"]
            door = enroller.enrol_photos("cpowell", [crop], source="device")[0]
            assert door["ok"], door["message"]
            assert [p["source"] for p in store.people.photos("cpowell")] == ["device"]
        finally:
            enroller.close()
