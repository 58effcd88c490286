"""Table 1 of the paper on our data: the runs of ``make ablation`` aggregated over seeds.

``make ablation`` trains, per seed, the recipe into ``<runs>/seed-<s>/<data>-<config>/`` and tests every model on the
target's held-out test videos (``tassn test`` writes ``test_results.json``). This script reads those results and
writes, for EPE (mm, mean over keypoints), AUC 0–50 and AUC 20–50, 2D PCK@5px and, where the results have them,
PA-EPE and ST-EPE (mm, after per-frame Procrustes / scale + translation alignment) and ACCEL and jitter over whole
videos (mm/frame², with the ground truth's own jitter as their reference; :mod:`tassn.metrics`):

- ``ablation.json``: every seed's numbers, mean ± std (sample std over seeds), the PCK curves, the paired
  differences between the three TASSN settings and whether the paper's ordering (TASSN < w/o L_c^m < w/o L_c in
  EPE) holds per seed and on the means;
- ``ablation.md``: the table in the paper's layout with the paper's numbers beside ours;
- a PNG of the mean PCK curves of the three settings (the paper's Fig. 6)::

    python benchmarks/ablation_report.py runs/ablation --data synthetic --config cpu --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tassn.paper_results import TABLE1, TABLE1_METRICS

METRICS: tuple[str, ...] = ("auc_0_50", "auc_20_50", "epe_mm", "pck2d")
#: Metrics that results written before they existed lack: a row without one shows "–" (JSON: null), never a number.
OPTIONAL_METRICS: tuple[str, ...] = ("pa_epe_mm", "st_epe_mm", "accel_mm", "jitter_mm", "jitter_gt_mm")
#: The optional metrics as Table 1 columns: (key, header, digits). The ground truth's jitter is a property of the
#: test videos, not of a row: it is printed once under the table.
OPTIONAL_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("pa_epe_mm", "PA-EPE (mm) ↓", 1),
    ("st_epe_mm", "ST-EPE (mm) ↓", 1),
    ("accel_mm", "ACCEL (mm/f²) ↓", 2),
    ("jitter_mm", "jitter (mm/f²)", 2),
)
#: (key, table label, run folder under <data>-<config>/); the paper's three settings are the middle rows.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("mean_pose", "mean pose (source training poses, no image)", "eval-mean_pose"),
    ("pretrain", "pretrain only (source 3D, no target training)", "eval-pretrain"),
    ("stage1", "stage 1 (target 2D heatmaps, L_h)", "eval-stage1"),
    ("stage2", "stage 2 (no temporal training)", "eval-stage2"),
    ("no_lc", "TASSN w/o L_c", "stage3-no_lc"),
    ("no_lc_mesh", "TASSN w/o L_c^m", "stage3-no_lc_mesh"),
    ("full", "TASSN", "stage3"),
    ("upper_bound", "upper bound (target 3D labels)", "upper_bound"),
)
SETTINGS: tuple[str, ...] = ("no_lc", "no_lc_mesh", "full")
#: the paper's Table 1 columns, in its order, and its rows by our row keys (tassn.paper_results.TABLE1)
PAPER_METRICS: tuple[str, ...] = TABLE1_METRICS
PAPER: dict[str, dict[str, tuple[float, float, float]]] = {
    d: {key: rows[label] for key, label, _ in ROWS if label in rows} for d, rows in TABLE1.items()
}
RESULTS_FILE = "test_results.json"


@dataclass
class Stat:
    """Mean and sample standard deviation (0 for one value) of one quantity over seeds."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        values = [float(v) for v in values]
        return cls(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values))

    def fmt(self, digits: int) -> str:
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}" if self.n > 1 else f"{self.mean:.{digits}f}"


def newest_results(folder: Path) -> Path | None:
    """The newest ``test_results.json`` under ``folder`` (each ``tassn test`` writes a new ``version_<n>/``)."""
    if not folder.is_dir():
        return None
    found = sorted(folder.rglob(RESULTS_FILE), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def load_seed(run: Path) -> dict[str, dict[str, Any]]:
    """``{row key: {"metrics", "pck_curve", "path"}}`` of the rows whose results exist in one seed's run folder."""
    rows: dict[str, dict[str, Any]] = {}
    for key, _, sub in ROWS:
        path = newest_results(run / sub)
        if path is None:
            continue
        try:
            data = json.loads(path.read_text())
            metrics = {m: float(data["metrics"][m]) for m in METRICS}
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: expected `tassn test` results with metrics {METRICS}: {err}") from err
        metrics.update(optional_metrics(data["metrics"], path))
        rows[key] = {"metrics": metrics, "pck_curve": data.get("pck_curve"), "path": str(path)}
    return rows


def optional_metrics(metrics: Mapping[str, Any], path: Path) -> dict[str, float]:
    """The :data:`OPTIONAL_METRICS` that ``metrics`` holds (a missing or null entry is left out, not invented)."""
    found = {}
    for m in OPTIONAL_METRICS:
        value = metrics.get(m)
        if value is None:
            continue
        try:
            found[m] = float(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: metric {m!r} must be a number, got {value!r}") from err
    return found


def optional_stat(runs: Mapping[str, Mapping[str, Any]], metric: str) -> dict[str, float | int] | None:
    """Mean, sample std and count over the seeds whose results have ``metric``; None when none has it."""
    values = [r["metrics"][metric] for r in runs.values() if metric in r["metrics"]]
    return vars(Stat.of(values)) if values else None


def fit_wall_seconds(folder: Path) -> float | None:
    """Wall time of the last training run in ``folder``: its ``config.yaml`` (written at the start) to the last
    write of its ``metrics.csv``; None when the folder has no finished run. Test runs of the same folder (their
    ``metrics.csv`` has no ``train/`` column) are skipped; a resumed run counts its last part only."""
    if not (folder / "fit.done").exists():
        return None
    fits = [m for m in folder.glob("version_*/metrics.csv") if "train/" in m.read_text().split("\n", 1)[0]]
    if not fits:
        return None
    metrics = max(fits, key=lambda p: p.stat().st_mtime)
    config = metrics.parent / "config.yaml"
    start = (config if config.exists() else metrics.parent / "hparams.yaml").stat().st_mtime
    return metrics.stat().st_mtime - start


def wall_times(run: Path, source_run: Path) -> dict[str, float]:
    """Training wall times (s) of one seed's runs, by run folder name."""
    folders = {"pretrain": source_run / "pretrain", "stage1": run / "stage1", "stage2": run / "stage2",
               "stage3": run / "stage3", "stage3-no_lc_mesh": run / "stage3-no_lc_mesh",
               "stage3-no_lc": run / "stage3-no_lc", "upper_bound": run / "upper_bound"}
    out = {}
    for name, folder in folders.items():
        seconds = fit_wall_seconds(folder)
        if seconds is not None:
            out[name] = round(seconds, 1)
    return out


def mean_curve(curves: Sequence[Mapping[str, list[float]]]) -> tuple[list[float], list[float]] | None:
    """The PCK curve averaged over seeds (all on the same threshold grid), or None without curves."""
    curves = [c for c in curves if c]
    if not curves:
        return None
    thresholds = curves[0]["thresholds_mm"]
    for c in curves:
        if len(c["thresholds_mm"]) != len(thresholds) or any(
            abs(a - b) > 1e-6 for a, b in zip(c["thresholds_mm"], thresholds, strict=True)
        ):
            raise ValueError("PCK curves of different seeds use different threshold grids")
    pck = [statistics.fmean(values) for values in zip(*(c["pck"] for c in curves), strict=True)]
    return list(thresholds), pck


def ordering(per_seed: Mapping[str, Mapping[str, dict[str, Any]]]) -> dict[str, Any]:
    """The paper's claims, tested per seed and on the means: EPE(full) < EPE(w/o L_c^m) < EPE(w/o L_c).

    Differences are paired by seed (the three settings of a seed share the stage-2 checkpoint): ``a − b`` in mm,
    positive when ``b`` is better. A difference whose mean is within one standard deviation of the paired
    differences of zero is reported as within noise.
    """
    seeds = [s for s, rows in per_seed.items() if all(k in rows for k in SETTINGS)]
    result: dict[str, Any] = {"seeds": seeds}
    pairs = {"no_lc - full": ("no_lc", "full"), "no_lc_mesh - full": ("no_lc_mesh", "full"),
             "no_lc - no_lc_mesh": ("no_lc", "no_lc_mesh")}
    for name, (a, b) in pairs.items():
        diffs = [per_seed[s][a]["metrics"]["epe_mm"] - per_seed[s][b]["metrics"]["epe_mm"] for s in seeds]
        if not diffs:
            continue
        stat = Stat.of(diffs)
        result[f"epe_{name.replace(' ', '')}"] = {
            "per_seed": diffs,
            "mean": stat.mean,
            "std": stat.std,
            "holds_in_seeds": sum(d > 0 for d in diffs),
            "within_noise": len(diffs) < 2 or abs(stat.mean) <= stat.std,
        }
    result["full_order_holds_in_seeds"] = sum(
        per_seed[s]["full"]["metrics"]["epe_mm"] < per_seed[s]["no_lc_mesh"]["metrics"]["epe_mm"]
        < per_seed[s]["no_lc"]["metrics"]["epe_mm"]
        for s in seeds
    )
    result["auc_order_holds_in_seeds"] = sum(
        per_seed[s]["full"]["metrics"]["auc_0_50"] > per_seed[s]["no_lc_mesh"]["metrics"]["auc_0_50"]
        > per_seed[s]["no_lc"]["metrics"]["auc_0_50"]
        for s in seeds
    )
    return result


def summarise(root: Path, data: str, config: str, seeds: Sequence[str]) -> dict[str, Any]:
    """Everything the table, JSON and PNG show, from ``root/seed-<s>/<data>-<config>/``."""
    per_seed: dict[str, dict[str, dict[str, Any]]] = {}
    times: dict[str, dict[str, float]] = {}
    for seed in seeds:
        seed_root = root / f"seed-{seed}"
        run = seed_root / f"{data}-{config}"
        rows = load_seed(run)
        if rows:
            per_seed[str(seed)] = rows
        times[str(seed)] = wall_times(run, seed_root / f"source-{config}")
    if not per_seed:
        raise FileNotFoundError(
            f"no {RESULTS_FILE} under {root}/seed-{{{','.join(map(str, seeds))}}}/{data}-{config}/: run `make ablation` first"
        )
    summary: dict[str, Any] = {}
    for key, label, _ in ROWS:
        runs = {s: rows[key] for s, rows in per_seed.items() if key in rows}
        if not runs:
            continue
        summary[key] = {
            "label": label,
            "seeds": list(runs),
            **{m: vars(Stat.of([r["metrics"][m] for r in runs.values()])) for m in METRICS},
            **{m: optional_stat(runs, m) for m in OPTIONAL_METRICS},
            "per_seed": {s: r["metrics"] for s, r in runs.items()},
            "pck_curve_mean": mean_curve([r["pck_curve"] for r in runs.values()]),
            "results_files": {s: r["path"] for s, r in runs.items()},
        }
    return {
        "data": data,
        "config": config,
        "seeds_requested": [str(s) for s in seeds],
        "rows": summary,
        "ordering": ordering(per_seed),
        "train_wall_s": times,
        "paper_table1": {d: {k: dict(zip(PAPER_METRICS, v, strict=True)) for k, v in rows.items()} for d, rows in PAPER.items()},
    }


def results_json(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The compact results file (docs/results.json): one object per row with its seeds and the mean and sample std
    over seeds of EPE (mm), AUC 0–50, AUC 20–50 and 2D PCK@5px, and of PA-EPE, ST-EPE (mm), ACCEL, jitter and the
    ground truth's jitter (mm/frame²) — those with ``n``, the seeds that had them, or null where no seed's results
    had them — the mean-pose baseline, the ordering tests."""
    rows = [
        {"name": row["label"], "key": key, "seeds": row["seeds"],
         **{m: {"mean": row[m]["mean"], "std": row[m]["std"]} for m in METRICS},
         **{m: None if row.get(m) is None else {k: row[m][k] for k in ("mean", "std", "n")}
            for m in OPTIONAL_METRICS}}
        for key, row in summary["rows"].items()
    ]
    baseline = next((r for r in rows if r["key"] == "mean_pose"), None)
    units = {"epe_mm": "mm", "pa_epe_mm": "mm", "st_epe_mm": "mm", "accel_mm": "mm/frame²", "jitter_mm": "mm/frame²",
             "jitter_gt_mm": "mm/frame²", "pck2d": "fraction of joints within 5 crop px"}
    return {"data": summary["data"], "config": summary["config"], "split": "target test videos", "units": units,
            "rows": rows, "mean_pose_baseline": baseline, "ordering": summary["ordering"]}


def stat_cell(stat: Mapping[str, Any] | None, digits: int, seeds: int) -> str:
    """``mean ± std`` of an optional metric, "–" without one, and ``(n=k)`` when fewer seeds than the row's had it."""
    if stat is None:
        return "–"
    cell = Stat(**stat).fmt(digits)
    return cell if stat["n"] == seeds else f"{cell} (n={stat['n']})"


def ground_truth_jitter(summary: Mapping[str, Any]) -> str | None:
    """One sentence on the ground truth's own jitter over the rows' test videos (the reference ACCEL and jitter
    are read against), or None when no row has it."""
    values = [row["jitter_gt_mm"]["mean"] for row in summary["rows"].values() if row.get("jitter_gt_mm")]
    if not values:
        return None
    low, high = min(values), max(values)
    value = f"{low:.2f}" if high - low < 0.005 else f"{low:.2f}–{high:.2f} (rows differ: not the same videos?)"
    return (f"The ground truth's own jitter on these test videos is {value} mm/frame²; ACCEL is the mean norm of "
            "the difference between predicted and true joint accelerations, jitter the mean norm of the predicted "
            "ones (both after the EPE alignment, over whole videos).")


def markdown(summary: Mapping[str, Any]) -> str:
    """The table in the paper's layout (AUC 0–50 ↑, AUC 20–50 ↑, EPE ↓), with the paper's rows beside ours."""
    data = summary["data"]
    paper = [data] if data in PAPER else list(PAPER)
    head = ("| setting | seeds | AUC 0–50 ↑ | AUC 20–50 ↑ | EPE (mm) ↓ | 2D PCK@5px ↑ |"
            + "".join(f" {title} |" for _, title, _ in OPTIONAL_COLUMNS)
            + "".join(f" paper {d.upper()}: AUC 0–50 / AUC 20–50 / EPE |" for d in paper))
    lines = [head, "|" + "---|" * (6 + len(OPTIONAL_COLUMNS) + len(paper))]
    for key, row in summary["rows"].items():
        cells = [
            row["label"],
            str(len(row["seeds"])),
            Stat(**row["auc_0_50"]).fmt(3),
            Stat(**row["auc_20_50"]).fmt(3),
            Stat(**row["epe_mm"]).fmt(1),
            Stat(**row["pck2d"]).fmt(3),
            *(stat_cell(row.get(m), digits, len(row["seeds"])) for m, _, digits in OPTIONAL_COLUMNS),
        ]
        for d in paper:
            ref = PAPER[d].get(key)
            cells.append(f"{ref[0]:.3f} / {ref[1]:.3f} / {ref[2]:.1f}" if ref else "–")
        lines.append("| " + " | ".join(cells) + " |")
    seeds = summary["seeds_requested"]
    lines += ["", "EPE (mm) per seed:", "", "| setting | " + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|" + "---|" * (1 + len(seeds))]
    for row in summary["rows"].values():
        cells = [f"{row['per_seed'][s]['epe_mm']:.1f}" if s in row["per_seed"] else "–" for s in seeds]
        lines.append(f"| {row['label']} | " + " | ".join(cells) + " |")
    times = summary.get("train_wall_s", {})
    runs = list(dict.fromkeys(name for t in times.values() for name in t))
    if runs:
        lines += ["", "Training wall time per run (s, from the run folders; machine shared, see below):", "",
                  "| seed | " + " | ".join(runs) + " |", "|" + "---|" * (1 + len(runs))]
        for seed, t in times.items():
            lines.append(f"| {seed} | " + " | ".join(f"{t[r]:.0f}" if r in t else "–" for r in runs) + " |")
    lines.append("")
    lines.append(f"Data: {data}, config: {summary['config']}; mean ± sample std over seeds. "
                 "The paper's numbers are on real videos (STB, MHP), not comparable in absolute terms on other data. "
                 "PA-EPE and ST-EPE: after per-frame Procrustes (scale, rotation, translation) and scale + "
                 "translation alignment to the ground truth; \"–\": the row's results lack the metric.")
    jitter = ground_truth_jitter(summary)
    if jitter:
        lines += ["", jitter]
    lines.append("")
    lines.append(ordering_text(summary["ordering"]))
    return "\n".join(lines) + "\n"


def ordering_text(order: Mapping[str, Any]) -> str:
    """One paragraph: does the paper's EPE ordering hold, and by how much (paired over seeds)."""
    seeds = order.get("seeds", [])
    if not seeds:
        return "The paper's ordering could not be tested: no seed has all three TASSN settings."
    n = len(seeds)
    parts = [
        f"Paper's ordering (EPE: TASSN < w/o L_c^m < w/o L_c) holds in {order['full_order_holds_in_seeds']} of {n} "
        f"seed(s); in AUC 0–50 (TASSN > w/o L_c^m > w/o L_c) in {order['auc_order_holds_in_seeds']} of {n}."
    ]
    names = {
        "epe_no_lc-full": "L_c (w/o L_c − TASSN)",
        "epe_no_lc_mesh-full": "L_c^m (w/o L_c^m − TASSN)",
        "epe_no_lc-no_lc_mesh": "L_c^p (w/o L_c − w/o L_c^m)",
    }
    for key, name in names.items():
        d = order.get(key)
        if d is None:
            continue
        noise = (" (one seed: no spread to compare with)" if n < 2
                 else " — within seed noise" if d["within_noise"] else "")
        parts.append(
            f"Gain from {name}: {d['mean']:+.2f} ± {d['std']:.2f} mm EPE, positive in {d['holds_in_seeds']}/{n} "
            f"seed(s){noise}."
        )
    return " ".join(parts)


def plot(summary: Mapping[str, Any], png: Path) -> None:
    """Mean PCK curves of the three TASSN settings (the paper's Fig. 6) as a PNG."""
    import cv2

    from tassn.viz import plot_pck_curves

    curves = {}
    for key in SETTINGS:
        row = summary["rows"].get(key)
        if row and row["pck_curve_mean"]:
            curves[f"{row['label']} (n={len(row['seeds'])})"] = tuple(row["pck_curve_mean"])
    if not curves:
        raise ValueError("no PCK curves of the TASSN settings to plot (test batches without 3D labels?)")
    data = summary["data"]
    image = plot_pck_curves(
        curves,
        reference=data if data in PAPER else None,
        title=f"3D PCK on the {data} test videos, mean over seeds ({summary['config']} config)",
    )
    png.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(png), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {png}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the ablation runs folder (make: ABLATION_RUNS, default runs/ablation)")
    parser.add_argument("--data", default="synthetic", help="DATA of the runs (synthetic, stb, mhp)")
    parser.add_argument("--config", default="cpu", help="CONFIG of the runs (cpu, paper)")
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="folder for ablation.json and ablation.md")
    parser.add_argument("--png", type=Path, default=Path("docs/images/ablation_pck.png"))
    parser.add_argument("--results-json", type=Path, default=None,
                        help="also write the compact per-row results here (make ablation: docs/results.json)")
    args = parser.parse_args(argv)
    try:
        summary = summarise(args.root, args.data, args.config, args.seeds)
        args.out.mkdir(parents=True, exist_ok=True)
        stem = "ablation" if (args.data, args.config) == ("synthetic", "cpu") else f"ablation-{args.data}-{args.config}"
        (args.out / f"{stem}.json").write_text(json.dumps(summary, indent=2) + "\n")
        table = markdown(summary)
        (args.out / f"{stem}.md").write_text(table)
        plot(summary, args.png)
        if args.results_json is not None:
            args.results_json.parent.mkdir(parents=True, exist_ok=True)
            args.results_json.write_text(json.dumps(results_json(summary), indent=2) + "\n")
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"ablation_report: error: {err}", file=sys.stderr)
        return 2
    print(table)
    missing = [s for s in args.seeds if s not in {s for r in summary["rows"].values() for s in r["seeds"]}]
    if missing:
        print(f"(no results yet for seed(s) {', '.join(missing)})")
    print(f"wrote {args.out / (stem + '.json')}, {args.out / (stem + '.md')}, {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
