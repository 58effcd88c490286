"""benchmarks/ablation_report.py: aggregation over seeds, the paper's ordering test, table and PNG."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ablation_report  # noqa: E402

THRESHOLDS = [0.0, 25.0, 50.0]


def write_result(folder: Path, epe: float, auc: float, pck: list[float], **extra: float) -> None:
    version = folder / "version_0"
    version.mkdir(parents=True)
    payload = {
        "stage": "stage3",
        "metrics": {"epe_mm": epe, "auc_0_50": auc, "auc_20_50": auc + 0.1, "pck2d": 0.5, **extra},
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
    assert ("| TASSN | 3 | 0.600 ± 0.000 | 0.700 ± 0.000 | 18.3 ± 0.6 | 0.500 ± 0.000 | – | – | – | – "
            "| 0.773 / 0.972 / 11.3 | 0.689 / 0.892 / 16.2 |") in table
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


def temporal(pa: float, st: float, accel: float, jitter: float, jitter_gt: float = 3.0) -> dict[str, float]:
    return {"pa_epe_mm": pa, "st_epe_mm": st, "accel_mm": accel, "jitter_mm": jitter, "jitter_gt_mm": jitter_gt}


@pytest.fixture
def temporal_runs(tmp_path: Path) -> Path:
    """Two seeds: TASSN with every metric in both, stage 2 with them in seed 0 only, stage 1 with none."""
    for seed, (pa, accel) in {"0": (8.0, 1.0), "1": (10.0, 2.0)}.items():
        run = tmp_path / f"seed-{seed}" / "synthetic-cpu"
        write_result(run / "stage3", 18.0, 0.6, [0.0, 0.6, 1.0], **temporal(pa, pa + 1.0, accel, accel + 3.0))
        extra = temporal(12.0, 13.0, 4.0, 5.0) if seed == "0" else {}
        write_result(run / "eval-stage2", 40.0, 0.3, [0.0, 0.3, 0.7], **extra)
        write_result(run / "eval-stage1", 45.0, 0.2, [0.0, 0.2, 0.6])
    return tmp_path


def test_temporal_and_aligned_columns_mean_std_or_dash(temporal_runs: Path) -> None:
    summary = ablation_report.summarise(temporal_runs, "synthetic", "cpu", ["0", "1"])
    full, stage2, stage1 = (summary["rows"][k] for k in ("full", "stage2", "stage1"))
    assert full["pa_epe_mm"] == pytest.approx({"mean": 9.0, "std": 1.4142136, "n": 2})
    assert full["accel_mm"]["mean"] == pytest.approx(1.5) and full["jitter_mm"]["mean"] == pytest.approx(4.5)
    assert stage2["st_epe_mm"] == {"mean": 13.0, "std": 0.0, "n": 1}  # one seed had it: not averaged with nothing
    assert stage1["accel_mm"] is None  # no seed had it: nothing invented
    table = ablation_report.markdown(summary)
    assert "| PA-EPE (mm) ↓ | ST-EPE (mm) ↓ | ACCEL (mm/f²) ↓ | jitter (mm/f²) |" in table
    assert "| TASSN | 2 | 0.600 ± 0.000 | 0.700 ± 0.000 | 18.0 ± 0.0 | 0.500 ± 0.000 | 9.0 ± 1.4 | 10.0 ± 1.4 | " \
           "1.50 ± 0.71 | 4.50 ± 0.71 |" in table
    assert "| stage 2 (no temporal training) | 2 | " in table and "| 12.0 (n=1) | 13.0 (n=1) | 4.00 (n=1) |" in table
    assert "| stage 1 (target 2D heatmaps, L_h) | 2 | 0.200 ± 0.000 | 0.300 ± 0.000 | 45.0 ± 0.0 | 0.500 ± 0.000 " \
           "| – | – | – | – |" in table
    assert "ground truth's own jitter on these test videos is 3.00 mm/frame²" in table


def test_results_json_keeps_old_keys_and_adds_the_new_ones(temporal_runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    assert ablation_report.main([str(temporal_runs), "--seeds", "0", "1", "--out", str(tmp_path / "o"),
                                 "--png", str(tmp_path / "p.png"), "--results-json", str(out)]) == 0
    rows = {r["key"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["full"]["epe_mm"] == {"mean": 18.0, "std": 0.0} and rows["full"]["pck2d"] == {"mean": 0.5, "std": 0.0}
    assert rows["full"]["accel_mm"] == pytest.approx({"mean": 1.5, "std": 0.7071068, "n": 2})
    assert rows["full"]["jitter_gt_mm"] == {"mean": 3.0, "std": 0.0, "n": 2}
    assert rows["stage1"]["pa_epe_mm"] is None and rows["stage1"]["jitter_mm"] is None


def test_a_non_numeric_metric_names_its_file(tmp_path: Path) -> None:
    run = tmp_path / "seed-0" / "synthetic-cpu"
    write_result(run / "stage3", 18.0, 0.6, [0.0, 0.6, 1.0], accel_mm="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"test_results.json: metric 'accel_mm' must be a number"):
        ablation_report.summarise(tmp_path, "synthetic", "cpu", ["0"])
