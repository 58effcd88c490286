"""Does ``tassn adapt`` help? Each synthetic target test video before and after adapting to it, over seeds.

Per video (a folder holding only its frames; the labels are read after every prediction of the video is made,
to score — :mod:`video_scoring`): ``tassn predict --video`` with the un-adapted checkpoint; then per seed ``s``
``tassn adapt --seed s`` (its own parser, code and defaults: tracking crop, pseudo-labels from the un-adapted model,
the collapse guard) and ``tassn predict --video`` again with the adapted weights, with the same options as before,
so that the weights are the only difference. Scored: 2D PCK at ``--pck-px`` frame pixels, EPE (root + reference
bone alignment), PA-EPE (Procrustes) and ACCEL (mm/frame², over the whole video), before and after; per video, and
over all videos per seed, then mean ± sample std over seeds. A video that ``tassn adapt`` refuses (no clip of
confident frames) keeps the un-adapted predictions — what a user would be left with — and is listed as refused.
Prints a markdown table for docs/results.md and writes the JSON::

    python benchmarks/bench_adapt.py --ckpt runs/synthetic-cpu/stage3/checkpoints/last.ckpt --seeds 0 1 2 \
        [--data data/synthetic] [--limit 4] [--steps 200] [--out benchmarks/results/adapt.json]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ablation_report import Stat  # noqa: E402
from tassn.predict.adapt import ADAPT_JSON, ADAPTED_CKPT, DEFAULT_STEPS  # noqa: E402
from video_scoring import (  # noqa: E402
    ALIGNMENT,
    VideoScorer,
    add_video_arguments,
    load_labels,
    predict,
    run_benchmark,
    stage_frames,
    target_videos,
)

#: (key, column title, digits) of the tables.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("pck2d", "2D PCK@{px}px ↑", 3), ("epe_mm", "EPE (mm) ↓", 1), ("pa_epe_mm", "PA-EPE (mm) ↓", 1),
    ("accel_mm", "ACCEL (mm/f²) ↓", 2),
)


def adapt(video: Path, ckpt: Path, out: Path, seed: int, steps: int, options: Sequence[str] = (),
          device: str = "auto") -> tuple[Path | None, dict[str, Any]]:
    """``tassn adapt --video video --ckpt ckpt --out out --seed seed --steps steps [options]`` by the command's own
    parser and code; ``(adapted checkpoint, adapt.json)``, or ``(None, {"refused": why})`` when it finds no clip
    of confident frames to train on."""
    from tassn.predict.adapt_main import build_parser, run_from_args

    args = build_parser().parse_args(["--video", str(video), "--ckpt", str(ckpt), "--out", str(out), "--seed",
                                      str(seed), "--steps", str(steps), "--no-overlay", "--mesh-format", "none",
                                      "--quiet", "--device", device, *options])
    try:
        folder = run_from_args(args)
    except ValueError as err:
        if "consecutive frames" not in str(err):  # adapt_video's refusal; other errors are the user's to fix
            raise
        return None, {"refused": str(err)}
    return folder / ADAPTED_CKPT, json.loads((folder / ADAPT_JSON).read_text())


def over_seeds(values: Sequence[float | None]) -> dict[str, float | int] | None:
    """Mean, sample std and count of the values that exist; None when none does."""
    present = [v for v in values if v is not None]
    return vars(Stat.of(present)) if present else None


def summarise(before: dict[str, Any], after: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``before``: scores of the un-adapted model; ``after``: scores per seed → per metric mean ± std over seeds and
    the change (after − before)."""
    out: dict[str, Any] = {"before": before, "after_per_seed": after, "after": {}, "change": {}}
    for key, _, _ in COLUMNS:
        stat = over_seeds([scores.get(key) for scores in after.values()])
        out["after"][key] = stat
        out["change"][key] = None if stat is None or before.get(key) is None else stat["mean"] - before[key]
    return out


def cell(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def stat_cell(stat: dict[str, Any] | None, digits: int) -> str:
    return "–" if stat is None else Stat(**stat).fmt(digits)


def markdown(report: dict[str, Any]) -> str:
    """The table for docs/results.md: all videos before and after (mean ± std over seeds), then per video."""
    px = f"{report['pck_px']:g}"
    titles = [title.format(px=px) for _, title, _ in COLUMNS]
    seeds = report["seeds"]
    overall = report["overall"]
    lines = ["| model | " + " | ".join(titles) + " |", "|" + "---|" * (1 + len(COLUMNS)),
             "| un-adapted | " + " | ".join(cell(overall["before"].get(k), d) for k, _, d in COLUMNS) + " |",
             f"| adapted ({report['steps']} steps, seeds {' '.join(seeds)}) | "
             + " | ".join(stat_cell(overall["after"][k], d) for k, _, d in COLUMNS) + " |",
             "", "Per video (un-adapted → adapted, mean over seeds):", "",
             "| video | frames | adapt s per seed | " + " | ".join(titles) + " |",
             "|" + "---|" * (3 + len(COLUMNS))]
    for v in report["videos"]:
        cells = [f"{cell(v['before'].get(k), d)} → {cell(v['after'][k] and v['after'][k]['mean'], d)}"
                 for k, _, d in COLUMNS]
        seconds = statistics.fmean(v["adapt_seconds"].values())
        refused = f" (refused: {len(v['refused_seeds'])} seed(s))" if v["refused_seeds"] else ""
        lines.append(f"| {v['video']}{refused} | {v['frames']} | {seconds:.0f} | " + " | ".join(cells) + " |")
    lines += ["", f"Synthetic target {report['split']} videos, checkpoint `{report['checkpoint']}`; 2D PCK in frame "
              f"pixels; EPE and ACCEL under {ALIGNMENT.split(' (')[0]} alignment, PA-EPE after Procrustes; mean ± "
              "sample std over seeds."]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    folder, names = target_videos(args.data, args.split, args.limit)
    predict_options, adapt_options = shlex.split(args.predict_args), shlex.split(args.adapt_args)
    seeds = [str(s) for s in args.seeds]
    before_scorer = VideoScorer(args.pck_px)
    after_scorers = {s: VideoScorer(args.pck_px) for s in seeds}
    videos = []
    for name in names:
        base = work / name
        frames = stage_frames(folder / "videos" / name, base / "frames")
        before = predict(frames, args.ckpt, base / "before", predict_options, args.device)
        after, reports, seconds = {}, {}, {}
        for seed in seeds:
            started = time.perf_counter()
            adapted, reports[seed] = adapt(frames, args.ckpt, base / f"adapt-seed{seed}", int(seed), args.steps,
                                           adapt_options, args.device)
            seconds[seed] = time.perf_counter() - started
            after[seed] = before if adapted is None else predict(frames, adapted, base / f"after-seed{seed}",
                                                                 predict_options, args.device)
            print(f"{name}, seed {seed}: {'adapted' if adapted else 'refused'} in {seconds[seed]:.1f} s", flush=True)
        labels = load_labels(folder, name)  # only now, to score
        row_before = before_scorer.add(name, before, labels)
        rows_after = {s: after_scorers[s].add(name, after[s], labels) for s in seeds}
        videos.append({
            "video": name, "frames": row_before["frames"], "before": row_before, "after_per_seed": rows_after,
            "after": {k: over_seeds([rows_after[s][k] for s in seeds]) for k, _, _ in COLUMNS},
            "adapt_seconds": seconds, "refused_seeds": [s for s in seeds if "refused" in reports[s]],
            "adapt": {s: {k: r.get(k) for k in ("refused", "steps", "frames_trained_on", "clips",
                                                 "collapse_stopped_at_step", "adapt_seconds")}
                      for s, r in reports.items()},
        })
    overall = summarise(before_scorer.total(), {s: sc.total() for s, sc in after_scorers.items()})
    return {"checkpoint": str(args.ckpt), "data": str(folder), "split": args.split, "seeds": seeds,
            "steps": args.steps, "pck_px": args.pck_px, "alignment": ALIGNMENT,
            "prediction": "tassn predict --video <frames> --no-overlay --mesh-format none " + " ".join(predict_options),
            "adaptation": f"tassn adapt --video <frames> --seed <s> --steps {args.steps} " + " ".join(adapt_options),
            "overall": overall, "videos": videos}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_video_arguments(parser)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="tassn adapt --seed values")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help=f"tassn adapt --steps (default {DEFAULT_STEPS}, the command's own)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/adapt.json"), help="JSON written here")
    parser.add_argument("--markdown", type=Path, help="also write the markdown table here")
    parser.add_argument("--pck-px", type=float, default=5.0, help="2D PCK threshold in frame pixels (default 5)")
    parser.add_argument("--predict-args", default="", help="more tassn predict options, before and after alike")
    parser.add_argument("--adapt-args", default="", help='more tassn adapt options, e.g. "--lr 1e-5 --batch-size 4"')
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, … (default auto)")
    parser.add_argument("--work", type=Path,
                        help="keep each video's frames, predictions and adapted checkpoints here (default: a "
                        "temporary folder)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    if args.steps < 1:
        print(f"bench_adapt: error: --steps must be at least 1, got {args.steps}", file=sys.stderr)
        return 2
    report = run_benchmark("bench_adapt", "make bench-adapt", args, run)
    if report is None:
        return 2
    report["seconds"] = time.perf_counter() - started
    table = markdown(report)
    report["markdown"] = table
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
    print(f"wrote {args.out}" + (f", {args.markdown}" if args.markdown else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
