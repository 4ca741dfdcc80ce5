"""`rollcall bench pipeline` end to end on one real clip (numbers are checked for shape and
sanity here; the speed targets are the benchmark's business, not a test's)."""

from __future__ import annotations

import json

import pytest

from firmware.cli import main

pytestmark = pytest.mark.integration


def test_bench_pipeline_writes_its_json(tmp_path, shared_data, built_models, capsys):
    out = tmp_path / "bench.json"
    clip = shared_data / "blink" / "WDA_AlexandriaOcasioCortez_000.mp4"
    code = main(["-q", "bench", "pipeline", "--video", str(clip), "--models-dir", str(built_models),
                 "--identities", "50", "--store-events", "0", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    for key in ("fps", "decision_latency_ms_median", "dropped_frames", "rss_mb", "append_ms_median", "append_ms_p99"):
        assert key in result
    [row] = result["clips"]
    assert row["frames"] == 150  # the first 75 % of 200 frames; the rest enrolled the person
    assert row["outcomes"] == {"accepted": 1}
    assert result["fps"] > 0 and result["rss_mb"] > 50 and result["dropped_frames"] == 0
    assert "fps (one face)" in capsys.readouterr().out
