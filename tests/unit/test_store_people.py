"""store.people: people, embeddings (shape/dtype/NaN checks, cache) and photos."""

import base64
import os

import cv2
import numpy as np
import pytest

from firmware.errors import ImageError
from firmware.store import NotFound, Store, StoreValueError
from tests.unit.test_store_support import clock, jpeg_bytes, store, unit_vector  # noqa: F401


def test_add_get_list_update_delete(store):
    store.people.add("ann", "Ann Lee", external_id="S-1", consent="consent")
    store.people.add("bob", "Bob", consent="consent")
    assert store.people.get("ann")["external_id"] == "S-1"
    assert [p["id"] for p in store.people.list()] == ["ann", "bob"]
    assert [p["id"] for p in store.people.list(search="lee")] == ["ann"]
    assert store.people.update("bob", name="Robert")["name"] == "Robert"
    store.people.delete("bob")
    assert store.people.get("bob") is None


@pytest.mark.parametrize("pid", ["", "../x", "a/b", ".hidden", "x" * 65, None, 5])
def test_bad_person_ids_are_refused(store, pid):
    with pytest.raises(StoreValueError):
        store.people.add(pid, "Name", consent="consent")


def test_duplicate_unknown_and_bad_fields(store):
    store.people.add("ann", "Ann", consent="consent")
    with pytest.raises(StoreValueError, match="already exists"):
        store.people.add("ann", "Ann again", consent="consent")
    with pytest.raises(NotFound):
        store.people.update("nobody", name="X")
    with pytest.raises(NotFound):
        store.people.delete("nobody")
    with pytest.raises(StoreValueError, match="cannot update"):
        store.people.update("ann", id="evil")
    with pytest.raises(StoreValueError):
        store.people.add("bob", "")


def test_embeddings_matrix_cache_and_filter(store):
    store.people.add("ann", "Ann", consent="consent")
    store.people.add("bob", "Bob", consent="consent")
    store.people.add_embedding("ann", unit_vector(1), "m1", None)
    store.people.add_embedding("bob", list(map(float, unit_vector(2))), "m1", None)
    store.people.add_embedding("ann", 3 * unit_vector(3), "m1", None)
    store.people.add_embedding("ann", unit_vector(4, 64), "m2", None)
    ids, matrix = store.people.embeddings("m1")
    assert ids == ["ann", "ann", "bob"] and matrix.shape == (3, 128) and matrix.dtype == np.float32
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    assert store.people.embeddings("m1")[1] is matrix  # cached
    ids_b, m_b = store.people.embeddings("m1", person_ids=["bob"])
    assert ids_b == ["bob"] and np.allclose(m_b[0], unit_vector(2), atol=1e-6)
    assert store.people.embeddings("m2")[1].shape == (1, 64)
    assert store.people.embeddings("none")[0] == []
    store.people.add_embedding("bob", unit_vector(5), "m1", None)
    assert store.people.embeddings("m1")[1].shape == (4, 128)  # invalidated on write


def test_base64_vector_and_persistence(tmp_path, clock):
    vec = unit_vector(7)
    with Store(tmp_path / "d", clock=clock) as s:
        s.people.add("ann", "Ann", consent="consent")
        s.people.add_embedding("ann", base64.b64encode(vec.astype("<f4").tobytes()).decode(), "m1", None)
    with Store(tmp_path / "d", clock=clock) as s:
        ids, matrix = s.people.embeddings("m1")
        assert ids == ["ann"] and np.allclose(matrix[0], vec, atol=1e-6)


@pytest.mark.parametrize("vector, message", [
    (np.ones((2, 64), np.float32), "1-D"),
    (np.arange(128), "floating-point"),
    (["a"] * 128, "floating-point"),
    (np.full(128, np.nan, np.float32), "NaN"),
    (np.r_[np.ones(127), np.inf].astype(np.float32), "NaN or infinity"),
    (np.zeros(128, np.float32), "zero vector"),
    ("not base64!", "base64"),
    (np.ones(1, np.float32), "1-D"),
])
def test_bad_vectors_are_refused(store, vector, message):
    store.people.add("ann", "Ann", consent="consent")
    with pytest.raises(StoreValueError, match=message):
        store.people.add_embedding("ann", vector, "m1", None)
    assert store.people.embeddings("m1")[0] == []


def test_wrong_dimension_model_and_unknown_person(store):
    store.people.add("ann", "Ann", consent="consent")
    store.people.add_embedding("ann", unit_vector(1), "m1", None)
    with pytest.raises(StoreValueError, match="128"):
        store.people.add_embedding("ann", unit_vector(2, 64), "m1", None)
    with pytest.raises(StoreValueError, match="model id"):
        store.people.add_embedding("ann", unit_vector(2), "bad model!", None)
    with pytest.raises(StoreValueError, match="sha256"):
        store.people.add_embedding("ann", unit_vector(2), "m1", "xyz")
    with pytest.raises(NotFound):
        store.people.add_embedding("ghost", unit_vector(2), "m1", None)


def test_photo_is_reencoded_private_and_deduplicated(store):
    store.people.add("ann", "Ann", consent="consent")
    upload = cv2.imencode(".png", np.full((32, 32, 3), 200, np.uint8))[1].tobytes()
    sha = "ab" * 32
    emb = store.people.add_embedding("ann", unit_vector(1), "m1", sha, photo_jpeg=upload)
    again = store.people.add_embedding("ann", unit_vector(1), "m1", sha, photo_jpeg=upload)
    assert again["duplicate"] and again["id"] == emb["id"]
    photos = store.people.photos("ann")
    assert len(photos) == 1 and photos[0]["photo_sha256"] == sha
    path = store.people.photo_path("ann", photos[0]["photo_id"])
    data = path.read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and data != upload  # a fresh JPEG, not the upload
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    with pytest.raises(StoreValueError):
        store.people.photo_path("ann", "../../etc/passwd")


def test_bad_photo_bytes_and_delete_removes_files(store):
    store.people.add("ann", "Ann", consent="consent")
    with pytest.raises(ImageError):
        store.people.add_embedding("ann", unit_vector(1), "m1", None, photo_jpeg=b"not an image")
    store.people.add_embedding("ann", unit_vector(1), "m1", None, photo_jpeg=jpeg_bytes())
    folder = store.data_dir / "people" / "ann"
    assert folder.is_dir()
    store.people.delete("ann")
    assert not folder.exists()
    assert store.people.embeddings("m1")[0] == []
