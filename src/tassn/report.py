"""``tassn report RUN_DIR|test_results.json …``: our test results beside the paper's Table 1.

``tassn test`` writes ``test_results.json`` into its run folder (``version_<n>/``); given a folder, the newest one
under it is read. The table shows EPE, AUC 0–50, AUC 20–50, PA-EPE (Procrustes-aligned), ACCEL and jitter (with
the ground truth's own jitter in brackets; mm/frame², over whole videos) of each result, then the paper's rows for
the same dataset (for the synthetic videos, which the paper does not use, both of its datasets for scale), and the path of
each PCK-curve PNG.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tassn.paper_results import TABLE1

RESULTS_FILE = "test_results.json"


def find_results(path: str | Path) -> Path:
    """``path`` itself when it is a file, else the newest ``test_results.json`` under the folder ``path``."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a {RESULTS_FILE} nor a run folder")
    found = sorted(path.rglob(RESULTS_FILE), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(
            f"no {RESULTS_FILE} under {path}: run `tassn test … --trainer.default_root_dir={path}` (or `make eval`) first"
        )
    return found[-1]


def load_results(path: Path) -> dict:
    """Read and check one results file."""
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    metrics = results.get("metrics") if isinstance(results, dict) else None
    if not isinstance(metrics, dict):
        raise ValueError(f"{path}: expected a JSON object with a 'metrics' object (written by `tassn test`)")
    return results


def _cell(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _jitter(metrics: dict) -> str:
    """``jitter (GT jitter)`` in mm/frame², or – when the results predate the temporal metrics."""
    if metrics.get("jitter_mm") is None:
        return "–"
    return f"{metrics['jitter_mm']:.2f} ({_cell(metrics.get('jitter_gt_mm'), 2)})"


def format_table(results: Sequence[dict]) -> str:
    """Rows of ours (from ``results``) and the paper's Table 1 rows of the same datasets, as aligned text."""
    header = (f"{'':40s} {'AUC 0–50 ↑':>11s} {'AUC 20–50 ↑':>12s} {'EPE mm ↓':>9s} {'PA-EPE ↓':>9s} {'ACCEL ↓':>8s} "
              f"{'jitter (GT)':>13s}")
    lines = [header, "-" * len(header)]
    datasets: list[str] = []
    for r in results:
        m = r["metrics"]
        label = f"ours, {r.get('dataset') or '?'}: {r.get('variant') or r.get('stage') or '?'}"
        lines.append(
            f"{label:40s} {_cell(m.get('auc_0_50'), 3):>11s} {_cell(m.get('auc_20_50'), 3):>12s} "
            f"{_cell(m.get('epe_mm'), 1):>9s} {_cell(m.get('pa_epe_mm'), 1):>9s} {_cell(m.get('accel_mm'), 2):>8s} "
            f"{_jitter(m):>13s}"
        )
        dataset = str(r.get("dataset") or "")
        for d in TABLE1 if dataset not in TABLE1 else [dataset]:
            if d not in datasets:
                datasets.append(d)
    for d in datasets:
        for variant, (auc050, auc2050, epe) in TABLE1[d].items():
            label = f"paper, {d.upper()}: {variant}"
            lines.append(f"{label:40s} {auc050:>11.3f} {auc2050:>12.3f} {epe:>9.1f} {'–':>9s} {'–':>8s} {'–':>13s}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tassn report", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help=f"run folders or {RESULTS_FILE} files")
    args = parser.parse_args(argv)
    try:
        files = [find_results(p) for p in args.paths]
        results = [load_results(f) for f in files]
    except (FileNotFoundError, ValueError) as err:
        print(f"tassn report: error: {err}", file=sys.stderr)
        return 2
    print(format_table(results))
    if any(str(r.get("dataset")) not in TABLE1 for r in results):
        print("(the paper has no synthetic videos: its STB and MHP rows are shown for scale, not as a comparison)")
    for f, r in zip(files, results, strict=True):
        curve = r.get("pck_curve_png")
        print(f"results: {f}" + (f"\nPCK curve: {curve}" if curve else "\nPCK curve: – (no 3D labels)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
