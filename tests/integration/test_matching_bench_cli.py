"""`rollcall bench recognition` end to end on a tiny LFW-layout set built from lfw10."""

from __future__ import annotations

import json

import pytest

from firmware.cli import main

pytestmark = pytest.mark.integration


def test_bench_recognition_quick_on_lfw10(shared_data, built_models, tmp_path, capsys):
    if not (built_models / "dlib_resnet_int8.tflite").is_file():
        pytest.skip("dlib_resnet_int8 not built")
    lfw10 = shared_data / "faces-small" / "lfw10"
    names = sorted(p.name for p in lfw10.iterdir() if p.is_dir())
    data = tmp_path / "lfw"
    data.mkdir()
    (data / "images").symlink_to(lfw10)                     # no copy of the data
    same = [f"{n}\t1\t{k}" for n in names for k in (2, 3)]
    diff = [f"{a}\t1\t{b}\t2" for a, b in zip(names, names[1:] + names[:1])] * 2
    (data / "pairs.txt").write_text(f"1\t20\n" + "\n".join(same + diff) + "\n")
    out = tmp_path / "r.json"
    assert main(["-q", "bench", "recognition", "--quick", "--no-baseline", "--data", str(data),
                 "--models-dir", str(built_models), "--embedders", "dlib_resnet_int8", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["pairs"] == 40 and results["images"] > 20
    assert results["lfw_accuracy_int8"] >= 0.9
    assert results["open_set"]["dlib_resnet_int8"]["enrol_3"]["genuine_probes"] == 70   # 10 people x photos 4..10
    assert results["ms_per_face_median"] > 0 and results["rss_mb"] > 0
    assert results["matching_10k"]["int8_all_ms_median"] > 0
    assert "dlib_resnet_int8" in capsys.readouterr().out
