"""Gallery matching: threshold AND margin, best-per-person, scoping, empty galleries."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.domain.matching import Gallery, MatchResult, l2_normalise


def unit(*values: float) -> np.ndarray:
    v = np.array(values, np.float32)
    return v / np.linalg.norm(v)


def angled(cos: float) -> np.ndarray:
    """A unit vector whose cosine to (1, 0, 0, 0) is ``cos``."""
    return np.array([cos, np.sqrt(1 - cos ** 2), 0, 0], np.float32)


@pytest.fixture(params=[np.int8, np.float16, np.float32], ids=["i8", "f16", "f32"])
def dtype(request):
    return request.param


def test_accepts_the_best_person_when_above_threshold_and_margin(dtype):
    g = Gallery(["ann", "bob"], np.stack([unit(1, 0, 0, 0), unit(0, 0, 1, 0)]), dtype=dtype)
    r = g.match(unit(1, 0.1, 0, 0), threshold=0.8, margin=0.1)
    assert r.accepted and r.person_id == "ann" and r.reason == "accepted"
    assert r.score == pytest.approx(0.995, abs=2e-3)
    assert r.runner_up_score == pytest.approx(0.0, abs=2e-3)


def test_below_threshold_gives_no_person_but_reports_the_best(dtype):
    g = Gallery(["ann", "bob"], np.stack([unit(1, 0, 0, 0), unit(0, 0, 1, 0)]), dtype=dtype)
    r = g.match(angled(0.5), threshold=0.6, margin=0.0)
    assert r == MatchResult(None, pytest.approx(0.5, abs=2e-3), pytest.approx(0.0, abs=2e-3),
                            "below_threshold", "ann")
    assert not r.accepted


def test_threshold_is_inclusive():
    g = Gallery(["ann"], [angled(1.0)], dtype=np.float32)
    assert g.match(angled(0.75), threshold=0.75, margin=0.0).accepted
    assert not g.match(angled(0.7499), threshold=0.75, margin=0.0).accepted


def test_ambiguous_when_runner_up_person_is_within_margin(dtype):
    g = Gallery(["ann", "bob"], np.stack([unit(1, 0.05, 0, 0), unit(1, -0.05, 0, 0)]), dtype=dtype)
    r = g.match(unit(1, 0.01, 0, 0), threshold=0.5, margin=0.05)
    assert r.reason == "ambiguous" and r.person_id is None and r.best_person_id == "ann"
    assert r.score - r.runner_up_score < 0.05
    assert g.match(unit(1, 0.01, 0, 0), threshold=0.5, margin=0.0).person_id == "ann"


def test_several_embeddings_of_one_person_never_compete_with_each_other():
    # two near-identical rows of ann would be "ambiguous" if compared per row
    rows = np.stack([unit(1, 0, 0, 0), unit(1, 0.01, 0, 0), unit(0, 1, 0, 0)])
    g = Gallery(["ann", "ann", "bob"], rows, dtype=np.float32)
    r = g.match(unit(1, 0.005, 0, 0), threshold=0.8, margin=0.2)
    assert r.accepted and r.person_id == "ann"
    assert r.runner_up_score == pytest.approx(0.005, abs=1e-3)  # bob, not ann's 2nd row
    assert len(g) == 2 and g.size == 3


def test_person_score_is_the_max_over_their_embeddings_in_any_row_order():
    rows = np.stack([angled(0.2), angled(0.9), angled(0.1), angled(0.6)])
    g = Gallery(["bob", "ann", "ann", "bob"], rows, dtype=np.float32)
    scores = dict(zip(g.people, g.person_scores(angled(1.0))))
    assert scores == {"ann": pytest.approx(0.9), "bob": pytest.approx(0.6)}


def test_scoping_to_a_roster_excludes_everyone_else(dtype):
    g = Gallery(["ann", "bob", "cy"], np.stack([unit(1, 0, 0, 0), unit(0.9, 0.1, 0, 0), unit(0, 0, 0, 1)]),
                dtype=dtype)
    probe = unit(1, 0, 0, 0)
    assert g.match(probe, ["bob", "cy"], threshold=0.5, margin=0.05).person_id == "bob"
    assert g.match(probe, ["cy"], threshold=0.5, margin=0.05).reason == "below_threshold"
    assert g.match(probe, ["ann", "bob"], threshold=0.5, margin=0.05).reason == "ambiguous"


def test_scope_is_built_once_per_roster_and_not_per_call():
    g = Gallery([f"p{i}" for i in range(100)], np.eye(100, dtype=np.float32))
    roster = [f"p{i}" for i in range(10, 20)]
    first = g.scope(roster)
    assert g.scope(list(reversed(roster))) is first
    assert len(first) == 10 and first.size == 10
    assert g.match(np.eye(100)[15], roster, threshold=0.9).person_id == "p15"
    assert g.match(np.eye(100)[50], roster, threshold=0.9).reason == "below_threshold"


def test_unknown_roster_ids_are_ignored_and_an_empty_scope_is_empty():
    g = Gallery(["ann"], [unit(1, 0, 0)])
    assert g.match(unit(1, 0, 0), ["ann", "nobody"], threshold=0.5).person_id == "ann"
    assert g.match(unit(1, 0, 0), ["nobody"], threshold=0.5) == MatchResult(None, None, None, "empty")
    assert g.match(unit(1, 0, 0), [], threshold=0.5).reason == "empty"


def test_empty_gallery():
    g = Gallery([], np.zeros((0, 128), np.float32))
    assert len(g) == 0
    r = g.match(np.ones(128), threshold=0.5, margin=0.1)
    assert r.reason == "empty" and r.person_id is None and r.score is None


def test_single_person_has_no_runner_up_and_margin_does_not_block():
    g = Gallery(["ann"], [unit(1, 0, 0)])
    r = g.match(unit(1, 0, 0), threshold=0.5, margin=0.9)
    assert r.accepted and r.runner_up_score is None


def test_unnormalised_inputs_are_normalised():
    g = Gallery(["ann", "bob"], np.array([[10.0, 0, 0], [0, 0, 3.0]]), dtype=np.float32)
    r = g.match(np.array([5.0, 0, 0]), threshold=0.99)
    assert r.person_id == "ann" and r.score == pytest.approx(1.0)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="one person id per embedding"):
        Gallery(["ann"], np.ones((2, 3)))
    g = Gallery(["ann"], np.ones((1, 3)))
    with pytest.raises(ValueError, match="3"):
        g.match(np.ones(4), threshold=0.5)


@pytest.mark.parametrize("dtype,ratio", [(np.float16, 2), (np.int8, 4)])
def test_compact_storage_saves_memory_and_keeps_scores_close(dtype, ratio):
    rng = np.random.default_rng(0)
    rows = l2_normalise(rng.normal(size=(5000, 128)))   # more rows than one scoring block
    ids = [str(i) for i in range(5000)]
    small = Gallery(ids, rows, dtype=dtype)
    g32 = Gallery(ids, rows, dtype=np.float32)
    probe = l2_normalise(rows[4321] + rng.normal(0, 0.03, 128))
    assert small.nbytes * ratio == g32.nbytes == 5000 * 128 * 4
    np.testing.assert_allclose(small.person_scores(probe), g32.person_scores(probe), atol=4e-3)
    assert small.match(probe, threshold=0.5).person_id == g32.match(probe, threshold=0.5).person_id == "4321"
    scoped = small.scope(ids[4000:])
    assert scoped.match(probe, threshold=0.5).person_id == "4321"


def test_unsupported_dtype_is_refused():
    with pytest.raises(ValueError, match="int8, float16 or float32"):
        Gallery(["a"], np.ones((1, 3)), dtype=np.float64)
