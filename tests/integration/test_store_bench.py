"""The store benchmark runs end to end on real files (small sizes; no timing asserted)."""

import pytest

from firmware.bench.store import bench_append, main
from firmware.store import Store

pytestmark = pytest.mark.integration


def test_bench_append_reports_every_number(tmp_path):
    result = bench_append(n_existing=2000, n_appends=30, data_dir=tmp_path / "bench")
    for key in ("append_ms_median", "append_ms_p99", "files", "bytes", "atomic_write_ms_p99",
                "fdatasync_append_ms_p99", "open_s"):
        assert result[key] > 0, key
    assert result["append_ms_p99"] >= result["append_ms_median"]
    assert result["outbox_depth"] == 2000 + 30 + 1  # prefill + appends + the session event
    with Store(tmp_path / "bench") as store:  # what the bench left behind is a valid store
        assert len(store.attendance.query()) == 2030
        assert store.health()["corrupt_files"] == []


def test_bench_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["--existing", "300", "--appends", "5", "--json", str(out)]) == 0
    assert '"append_ms_p99"' in out.read_text() and "append_ms_median" in capsys.readouterr().out
