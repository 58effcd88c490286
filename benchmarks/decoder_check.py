"""Which sub-pixel decoder reads a trained hourglass's heatmaps best? Same heatmaps, several decoders.

A checkpoint's last-stack heatmaps are collected once on a validation split — the clip run recurrently, as every
stage validates — and each decoder turns them into keypoints, scored by 2D PCK@5px and mean error on the crop
(PCK and visibility as :class:`tassn.metrics.PCK2D` counts them). Decoders: the bare argmax; the package's own
(:func:`tassn.heatmaps.heatmap_peaks`, a parabola through the log-heatmap at the argmax); kornia's global
``spatial_soft_argmax2d`` at a few temperatures; kornia's ``conv_soft_argmax2d`` window at the argmax; and DARK
(Zhang et al. 2020: the map blurred by a Gaussian, then a 2D Taylor step on its log). The fed-back ``H_t`` is the
package's, so only the read-out changes::

    python benchmarks/decoder_check.py --stage stage1 --weights runs/…/stage1/checkpoints/last.ckpt
    python benchmarks/decoder_check.py --stage pretrain --weights runs/…/pretrain/checkpoints/last.ckpt

Writes ``<out>`` (JSON). Validation only: a decoder is chosen there, never on a test split.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_check import build  # noqa: E402 (the sibling benchmark's stage builder)

PCK_PX = 5.0


def collect(stage: str, weights: Path, config: str, extra: list[str]) -> tuple[Tensor, Tensor, Tensor, float]:
    """Last-stack heatmaps ``N×J×h×w``, labels ``N×J×2`` (crop px), visibility ``N×J`` of the validation split and
    the crop pixels per heatmap cell."""
    from tassn.stages.checkpoints import load_net_from_checkpoint

    cli = build(stage, config, None, ["--seed_everything=0", *extra])
    model, dm = cli.model, cli.datamodule
    dm.prepare_data()
    dm.setup("fit")
    model.setup("fit")
    load_net_from_checkpoint(model.net, weights, (stage,))
    model.eval()
    maps, labels, visible = [], [], []
    with torch.no_grad():
        for batch in dm.val_dataloader():
            maps.append(model.net.run(batch["frames"]).heatmaps[:, :, -1].flatten(0, 1))
            labels.append(batch["kp2d"].flatten(0, 1))
            visible.append(batch["visible"].flatten(0, 1).bool())
    heat = torch.cat(maps)
    return heat, torch.cat(labels), torch.cat(visible), batch["frames"].shape[-1] / heat.shape[-1]


def at_argmax(coords: Tensor, heatmaps: Tensor) -> Tensor:
    """``coords N×J×2×h×w`` (a value per map position) read at each map's argmax → ``N×J×2``."""
    index = heatmaps.flatten(-2).argmax(-1)
    return coords.flatten(-2).gather(-1, index[..., None, None].expand(-1, -1, 2, 1)).squeeze(-1)


def kornia_window(kernel: int) -> Callable[[Tensor], Tensor]:
    def decode(heatmaps: Tensor) -> Tensor:
        from kornia.geometry.subpix import conv_soft_argmax2d

        pad = kernel // 2
        coords = conv_soft_argmax2d(heatmaps, (kernel, kernel), (1, 1), (pad, pad), temperature=0.1,
                                    normalized_coordinates=False)  # N×J×2×h×w, (x, y)
        return at_argmax(coords, heatmaps)

    return decode


def kornia_global(temperature: float) -> Callable[[Tensor], Tensor]:
    def decode(heatmaps: Tensor) -> Tensor:
        from kornia.geometry.subpix import spatial_soft_argmax2d

        return spatial_soft_argmax2d(heatmaps, torch.tensor(temperature), normalized_coordinates=False)

    return decode


def dark(sigma: float) -> Callable[[Tensor], Tensor]:
    """DARK: blur each map by a Gaussian of ``sigma`` cells (peak rescaled), then one Newton step on its log."""

    def decode(heatmaps: Tensor) -> Tensor:
        from kornia.filters import gaussian_blur2d

        from tassn.heatmaps import heatmap_argmax

        size = 2 * int(3 * sigma) + 1
        blurred = gaussian_blur2d(heatmaps.clamp_min(1e-10), (size, size), (sigma, sigma), border_type="replicate")
        blurred = blurred * heatmaps.amax((-1, -2), keepdim=True) / blurred.amax((-1, -2), keepdim=True).clamp_min(1e-10)
        log = blurred.clamp_min(1e-10).log()
        h, w = heatmaps.shape[-2:]
        peak = heatmap_argmax(heatmaps).long()
        x, y = peak[..., 0].clamp(1, w - 2), peak[..., 1].clamp(1, h - 2)

        def at(dy: int, dx: int) -> Tensor:
            return log.flatten(-2).gather(-1, ((y + dy) * w + x + dx)[..., None]).squeeze(-1)

        centre = at(0, 0)
        dxx, dyy = at(0, 1) - 2 * centre + at(0, -1), at(1, 0) - 2 * centre + at(-1, 0)
        dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
        gx, gy = 0.5 * (at(0, 1) - at(0, -1)), 0.5 * (at(1, 0) - at(-1, 0))
        det = dxx * dyy - dxy**2
        ok = (det > 1e-9) & (dxx < 0)
        safe = torch.where(ok, det, torch.ones_like(det))
        ox = torch.where(ok, -(dyy * gx - dxy * gy) / safe, torch.zeros_like(det)).clamp(-1, 1)
        oy = torch.where(ok, -(dxx * gy - dxy * gx) / safe, torch.zeros_like(det)).clamp(-1, 1)
        return torch.stack([x + ox, y + oy], dim=-1).to(heatmaps.dtype)

    return decode


def decoders() -> dict[str, Callable[[Tensor], Tensor]]:
    from tassn.heatmaps import heatmap_argmax, heatmap_peaks

    return {
        "argmax": heatmap_argmax,
        "parabola on the log-heatmap (tassn.heatmaps.heatmap_peaks, the package's)": lambda h: heatmap_peaks(h)[0],
        "kornia spatial_soft_argmax2d, temperature 0.1": kornia_global(0.1),
        "kornia spatial_soft_argmax2d, temperature 0.05": kornia_global(0.05),
        "kornia conv_soft_argmax2d 3×3 at the argmax": kornia_window(3),
        "kornia conv_soft_argmax2d 5×5 at the argmax": kornia_window(5),
        "DARK, blur σ = 0.5 cell": dark(0.5),
        "DARK, blur σ = 1 cell": dark(1.0),
    }


def score(points: Tensor, labels: Tensor, visible: Tensor, stride: float) -> dict[str, float]:
    """PCK at ``PCK_PX`` crop pixels and mean error (crop px) of heatmap-cell ``points`` over visible joints."""
    from tassn.heatmaps import heatmap_to_crop

    distance = (heatmap_to_crop(points, stride) - labels).norm(dim=-1)[visible]
    return {"pck2d": float((distance <= PCK_PX).float().mean()), "error_px": float(distance.mean())}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="stage1", choices=["pretrain", "stage1", "stage2", "stage3"])
    parser.add_argument("--weights", type=Path, required=True, help="a trained checkpoint of that stage")
    parser.add_argument("--config", default="cpu", help="sizes overlay experiments/<config>.yaml (+ its schedule)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/decoder_check.json"))
    args = parser.parse_args(argv)
    if not args.weights.is_file():
        print(f"decoder_check: error: no checkpoint at {args.weights}", file=sys.stderr)
        return 2
    heatmaps, labels, visible, stride = collect(args.stage, args.weights, args.config, extra)
    rows = {name: score(decode(heatmaps), labels, visible, stride) for name, decode in decoders().items()}
    width = max(map(len, rows))
    print(f"{'decoder':<{width}}  PCK@{PCK_PX:g}px  error px   ({len(heatmaps)} frames, {args.stage}, {args.weights})")
    for name, row in rows.items():
        print(f"{name:<{width}}  {row['pck2d']:>9.4f}  {row['error_px']:>8.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"stage": args.stage, "weights": str(args.weights), "frames": len(heatmaps),
                                    "pck_px": PCK_PX, "decoders": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
