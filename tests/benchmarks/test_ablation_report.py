"""benchmarks/ablation_report.py: aggregation over seeds, the paper's ordering test, table and PNG."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ablation_report  # noqa: E402

THRESHOLDS = [0.0, 25.0, 50.0]


def write_result(folder: Path, epe: float, auc: float, pck: list[float]) -> None:
    version = folder / "version_0"
    version.mkdir(parents=True)
    payload = {
        "stage": "stage3",
        "metrics": {"epe_mm": epe, "auc_0_50": auc, "auc_20_50": auc + 0.1, "pck2d": 0.5},
        "pck_curve": {"thresholds_mm": THRESHOLDS, "pck": pck},
    }
    (version / "test_results.json").write_text(json.dumps(payload))


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Three seeds; seed 2 breaks the ordering (w/o L_c^m better than TASSN)."""
    epes = {  # seed: (no_lc, no_lc_mesh, full)
        "0": (30.0, 20.0, 18.0),
        "1": (32.0, 22.0, 19.0),
        "2": (28.0, 17.0, 18.0),
    }
    for seed, (no_lc, no_lc_mesh, full) in epes.items():
        run = tmp_path / f"seed-{seed}" / "synthetic-cpu"
        write_result(run / "stage3-no_lc", no_lc, 0.4, [0.0, 0.4, 0.8])
        write_result(run / "stage3-no_lc_mesh", no_lc_mesh, 0.5, [0.0, 0.5, 0.9])
        write_result(run / "stage3", full, 0.6, [0.0, 0.6, 1.0])
        write_result(run / "eval-stage2", 40.0, 0.3, [0.0, 0.3, 0.7])
    return tmp_path


def test_summary_mean_std_and_ordering(runs: Path) -> None:
    summary = ablation_report.summarise(runs, "synthetic", "cpu", ["0", "1", "2"])
    full = summary["rows"]["full"]
    assert full["epe_mm"]["mean"] == pytest.approx(55.0 / 3)
    assert full["epe_mm"]["std"] == pytest.approx(0.5773503, rel=1e-6)  # sample std of 18, 19, 18
    assert summary["rows"]["no_lc"]["pck_curve_mean"] == ([0.0, 25.0, 50.0], pytest.approx([0.0, 0.4, 0.8]))
    assert "pretrain" not in summary["rows"]  # missing runs are left out, not invented
    order = summary["ordering"]
    assert order["full_order_holds_in_seeds"] == 2
    mesh = order["epe_no_lc_mesh-full"]
    assert mesh["per_seed"] == pytest.approx([2.0, 3.0, -1.0])
    assert mesh["holds_in_seeds"] == 2
    assert mesh["within_noise"] is True  # mean 1.33 ≤ std 2.08
    assert order["epe_no_lc-full"]["within_noise"] is False


def test_markdown_has_paper_rows_and_verdict(runs: Path) -> None:
    summary = ablation_report.summarise(runs, "synthetic", "cpu", ["0", "1", "2"])
    table = ablation_report.markdown(summary)
    assert ("| TASSN | 3 | 0.600 ± 0.000 | 0.700 ± 0.000 | 18.3 ± 0.6 | 0.500 ± 0.000 | 0.773 / 0.972 / 11.3 "
            "| 0.689 / 0.892 / 16.2 |") in table
    assert "holds in 2 of 3 seed(s); in AUC 0–50 (TASSN > w/o L_c^m > w/o L_c) in 3 of 3" in table
    assert "within seed noise" in table


def test_main_writes_json_md_png(runs: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "out", tmp_path / "pck.png"
    compact = tmp_path / "results.json"
    code = ablation_report.main([str(runs), "--seeds", "0", "1", "2", "--out", str(out), "--png", str(png),
                                 "--results-json", str(compact)])
    assert code == 0
    assert json.loads((out / "ablation.json").read_text())["rows"]["full"]["seeds"] == ["0", "1", "2"]
    rows = {r["key"]: r for r in json.loads(compact.read_text())["rows"]}
    assert rows["full"]["name"] == "TASSN" and rows["full"]["seeds"] == ["0", "1", "2"]
    assert rows["full"]["epe_mm"] == pytest.approx({"mean": 55.0 / 3, "std": 0.5773503})
    assert rows["full"]["pck2d"] == {"mean": 0.5, "std": 0.0}
    assert json.loads(compact.read_text())["mean_pose_baseline"] is None  # no such run here: not invented
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_results_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ablation_report.main([str(tmp_path), "--out", str(tmp_path / "o"), "--png", str(tmp_path / "p.png")]) == 2
    assert "run `make ablation` first" in capsys.readouterr().err
