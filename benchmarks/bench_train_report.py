"""Markdown tables of ``bench_train.py``'s results: the printing half of the benchmark."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def markdown_table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """``columns``: (key, header, format); missing values print as ``–`` (or the row's ``skipped`` reason)."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = []
        for key, _, fmt in columns:
            value = r.get(key)
            cells.append("–" if value is None else format(value, fmt) if fmt else str(value))
        if "skipped" in r:
            cells[-1] = f"skipped: {r['skipped']}"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def temporal_price(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stage 3's cost per frame over stage 2's, per size: what the reversed pass and L_c cost (the ratio of the
    per-stage medians of interleaved rounds)."""
    out = []
    for size in dict.fromkeys(r["size"] for r in rows):
        by = {r["stage"]: r for r in rows if r["size"] == size}
        if "stage2" in by and "stage3" in by:
            out.append({"size": size, "stage2_ms_per_frame": by["stage2"]["ms_per_frame"],
                        "stage3_ms_per_frame": by["stage3"]["ms_per_frame"],
                        "ratio": by["stage3"]["ms_per_frame"] / by["stage2"]["ms_per_frame"]})
    return out


def init_label(result: Mapping[str, Any]) -> str:
    """Which weights the PMEs started from (results written before ``--init-from`` existed were fresh)."""
    if result.get("init", "fresh") == "fresh":
        return "fresh PME (seeded, no checkpoint)"
    return f"{result['init_from']} (stage {result['init_stage']!r}; {', '.join(result['init_modules'])})"


def batches_label(result: Mapping[str, Any]) -> str:
    """Where the timed batches came from (results written before ``--data-batch`` existed: noise frames)."""
    if result.get("batches", "noise") == "noise":
        return "noise frames with randomly posed procedural hands' labels and silhouettes"
    return (f"each stage's first training batch of the synthetic data in {result['data_root']} "
            f"(as make builds it at CONFIG={result['data_config']})")


def mesh_sizes(r: Mapping[str, Any]) -> str:
    """The rendered meshes' size against the batch's, in words: is the renderer timed on hand-sized meshes?"""
    return (f"mean face {r['face_area_px']:.2f} px² (batch's hands {r['gt_face_area_px']:.2f}), silhouettes "
            f"{r['silhouette_fraction']:.1%} of the crop (batch's {r['gt_silhouette_fraction']:.1%})")


def report(result: Mapping[str, Any]) -> str:
    parts = [f"device: {result['device']}, machine: {json.dumps(result['machine'])}",
             f"PME weights: {init_label(result)}", f"Batches: {batches_label(result)}", "", "Training step:",
             markdown_table(result["train"], [
                 ("size", "size", ""), ("stage", "stage", ""), ("batch", "B", "d"), ("clip_len", "T", "d"),
                 ("clips_per_s", "clips/s", ".2f"), ("frames_per_s", "frames/s", ".1f"),
                 ("ms_per_frame", "ms/frame", ".1f"), ("ratio_to", "per frame over", ""), ("ratio", "median", ".2f"),
                 ("ratio_min", "min", ".2f"), ("ratio_max", "max", ".2f"), ("rounds", "rounds", "d"),
                 ("peak_mem_mb", "peak MiB", ".0f")])]
    rendered = [r for r in result["train"] if "face_area_px" in r]
    if rendered:
        parts += ["", "Meshes rendered in each silhouette stage's last timed step, against the batch's hands "
                  "(mean face area in crop px², silhouette area as a fraction of the crop):",
                  markdown_table(rendered, [
                      ("size", "size", ""), ("stage", "stage", ""), ("face_area_px", "face px²", ".2f"),
                      ("gt_face_area_px", "batch face px²", ".2f"), ("silhouette_fraction", "silhouette", ".1%"),
                      ("gt_silhouette_fraction", "batch silhouette", ".1%")])]
    if result.get("temporal_price"):
        parts += ["", "Price of the temporal training (stage 3 / stage 2, per frame):",
                  markdown_table(result["temporal_price"], [
                      ("size", "size", ""), ("stage2_ms_per_frame", "stage 2 ms/frame", ".1f"),
                      ("stage3_ms_per_frame", "stage 3 ms/frame", ".1f"), ("ratio", "ratio", ".2f")])]
    if result.get("render"):
        parts += ["", "Silhouette renderer, per batch:", markdown_table(result["render"], [
            ("size", "size", ""), ("backend", "backend", ""), ("batch", "meshes", "d"),
            ("forward_ms", "forward ms", ".1f"), ("forward_backward_ms", "fwd+bwd ms", ".1f"),
            ("peak_mem_mb", "peak MiB", ".0f")])]
    if result.get("infer"):
        parts += ["", "PME inference over a clip:", markdown_table(result["infer"], [
            ("size", "size", ""), ("flow", "flow", ""), ("clip_len", "T", "d"), ("ms_per_frame", "ms/frame", ".1f"),
            ("peak_mem_mb", "peak MiB", ".0f")])]
    if result.get("compare"):
        parts += ["", "Renderer covering pairs, one method (before) against another (after), interleaved:",
                  markdown_table(result["compare"], [
                      ("size", "size", ""), ("case", "case", ""), ("old_method", "before", ""),
                      ("new_method", "after", ""), ("old_ms", "before ms", ".1f"),
                      ("new_ms", "after ms", ".1f"), ("speedup", "speed-up", ".2f"), ("speedup_min", "min", ".2f"),
                      ("speedup_max", "max", ".2f"), ("rounds", "rounds", "d"),
                      ("max_alpha_diff", "max |Δalpha|", ".1e")])]
    if result.get("profile"):
        prof = result["profile"]
        r, step_ms = prof["renderer"], prof["step_ms"][0]["ms_per_step"]
        parts += ["", f"Renderer in the profiled stage-3 step: forward {r['forward_ms']:.1f} ms + backward "
                  f"{r['backward_ms']:.1f} ms = {r['share_of_step']:.1%} of {step_ms:.0f} ms"]
        if "face_area_px" in r:
            parts += [f"  on meshes of {mesh_sizes(r)}"]
        rows = prof["step_ms"] + prof["sections"] + prof["backward"]
        parts += ["", "Stage-3 step profile (forward of each part, heaviest backward nodes; wall time incl. children):",
                  markdown_table(rows, [("name", "part", ""), ("ms_per_step", "ms/step", ".1f"),
                                        ("share_of_step", "share", ".1%"), ("calls_per_step", "calls/step", ".0f")]),
                  "", "Top operators by self CPU time:",
                  markdown_table(prof["ops"], [("name", "operator", ""), ("ms_per_step", "self ms/step", ".1f"),
                                               ("share_of_step", "share", ".1%"), ("calls_per_step", "calls/step", ".0f")])]
    return "\n".join(parts)
