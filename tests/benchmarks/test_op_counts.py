"""benchmarks/op_counts.py: operator and data-dependent-operator counts of a training step, per stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import op_counts  # noqa: E402


def test_the_renderers_span_walk_adds_operators_and_waits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import bench_train

    monkeypatch.setitem(bench_train.STAGE_OPTIONS, "renderer_method", "auto")  # main sets it; restored afterwards
    out = tmp_path / "ops.json"
    assert op_counts.main(["--stages", "pretrain", "stage2", "--method", "spans", "--out", str(out)]) == 0
    rows = {r["stage"]: r for r in json.loads(out.read_text())["rows"]}
    assert 0 < rows["pretrain"]["top_level_ops"] < rows["stage2"]["top_level_ops"] <= rows["stage2"]["all_aten_ops"]
    # the silhouette's span walk finds its pairs with nonzero: stage 2 waits on the data far more often
    assert rows["stage2"]["data_dependent"].get("aten::nonzero", 0) > rows["pretrain"]["data_dependent"].get(
        "aten::nonzero", 0)
    assert rows["stage2"]["data_dependent_total"] == sum(rows["stage2"]["data_dependent"].values())
    assert "× pretrain" in capsys.readouterr().out
