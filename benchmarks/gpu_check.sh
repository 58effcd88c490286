#!/usr/bin/env bash
# GPU check (at most 5 minutes on one CUDA device), four steps, each under its own time limit (35 + 110 + 40 + 115 s):
#   cuda_tests  the CUDA-marked tests (pytest -m cuda --require-cuda: they fail, never skip, without a GPU); their
#               CPU reference renders with the PyTorch span walk (TASSN_NATIVE_RENDER=0), so that compiling the
#               native CPU kernels (about a minute on a fresh machine; a CPU matter, tested by `make test`) is not
#               on the clock
#   bench       make bench BENCH_DEVICE=cuda at the paper size with bf16 autocast (training steps and renderer;
#               3 interleaved rounds instead of 5, to fit the 5 minutes)
#   data        tassn prepare: a small synthetic target set at the paper's crop size (4 training videos of 12
#               frames; rendered without supersampling and GrabCut at 2 iterations, which only shortens the
#               preparation)
#   stage3_fit  50 steps of stage 3 at the paper size: tassn fit with experiments/stage3.yaml, the synthetic data
#               and experiments/paper.yaml (256² crops, the full PME, DDP with sync_batchnorm) on one device in
#               bf16-mixed precision, from a fresh PME, no validation, 1 clip of 4 frames per step: the paper's 6
#               clips of 8 frames per GPU took 7.5 s a step on an H200, and 1 clip of 8 frames 3.4 s (its forward
#               and backward, a long chain of small kernels, not the data), so 50 of either need more than the
#               five minutes leave; 4 frames halve the recurrence and the flow pairs. Lightning's
#               max_time ends the fit cleanly before the step's limit, so that a slow device still leaves its
#               step count and Lightning's simple profile (time per training action) in the JSON; fewer than 50
#               steps fails the check
# and one JSON (default benchmarks/results/gpu_check.json) with each step's exit status and seconds, the test
# counts, the bench's JSON and the fit's last logged losses. Exits 2 with a message where torch sees no CUDA
# device; 1 where a step failed (its log's tail is printed); 0 otherwise.
#
#   bash benchmarks/gpu_check.sh [OUT_JSON]              (or: make gpu-check)
#   bash benchmarks/gpu_check.sh --dry-run [OUT_JSON]    no GPU needed: print the steps and check their arguments
#                                                        (tests collected, bench_train and tassn fit flags parsed)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export WANDB_MODE=${WANDB_MODE:-disabled}
export TASSN_NATIVE_RENDER=${TASSN_NATIVE_RENDER:-0}
FIT_STEPS=50
DRY_RUN=0
if [ "${1:-}" = "--dry-run" ]; then DRY_RUN=1; shift; fi
OUT=${1:-benchmarks/results/gpu_check.json}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

CUDA_TESTS=("$PYTHON" -m pytest -q -m cuda --require-cuda -p no:cacheprovider --junitxml="$WORK/cuda_tests.xml"
  tests)
BENCH_ARGS="--sizes paper --autocast bf16 --parts train render --rounds 3 --out $WORK/bench.json"
BENCH=(make --no-print-directory -o .install.stamp bench PYTHON="$PYTHON" BENCH_DEVICE=cuda
  BENCH_ARGS="$BENCH_ARGS")
CONFIGS=(--config experiments/stage3.yaml --config experiments/data/synthetic.yaml --config experiments/paper.yaml
  --data.init_args.root="$WORK/data" --data.init_args.num_train_videos=4 --data.init_args.num_val_videos=1
  --data.init_args.num_test_videos=1 --data.init_args.frames_per_video=12 --data.init_args.supersample=1
  --data.init_args.grabcut_iterations=2)
DATA=("$PYTHON" -m tassn prepare "${CONFIGS[@]}")
FIT=("$PYTHON" -m tassn fit "${CONFIGS[@]}" --seed_everything=0 --model.init_args.init_from=null
  --data.init_args.batch_size=1 --data.init_args.clip_len=4 --trainer.devices=1 --trainer.precision=bf16-mixed --trainer.max_steps=$FIT_STEPS
  --trainer.max_time=00:00:01:30 --trainer.limit_val_batches=0 --trainer.num_sanity_val_steps=0
  --trainer.log_every_n_steps=1 --trainer.default_root_dir="$WORK/stage3"
  --trainer.profiler=lightning.pytorch.profilers.SimpleProfiler --trainer.profiler.dirpath="$WORK/stage3"
  --trainer.profiler.filename=profile
  --checkpoint.save_last=false --checkpoint.save_top_k=0 --step_checkpoint.every_n_train_steps=0)

if [ "$DRY_RUN" -eq 1 ]; then
  for name in CUDA_TESTS BENCH DATA FIT; do
    declare -n cmd=$name
    echo "== $name: ${cmd[*]}"
  done
  echo "== checking: the CUDA-marked tests collect"
  "${CUDA_TESTS[@]}" --collect-only
  echo "== checking: make bench's commands and bench_train's arguments"
  "${BENCH[@]}" -n
  # shellcheck disable=SC2086  # BENCH_ARGS is split as make splits it
  "$PYTHON" benchmarks/bench_train.py --device cuda $BENCH_ARGS --check-args
  echo "== checking: tassn fit's arguments (tassn prepare reads the same config and data arguments)"
  "${FIT[@]}" --print_config >"$WORK/fit_config.yaml"
  grep -E "^  (max_steps|precision|devices|strategy|accelerator):" "$WORK/fit_config.yaml"
  echo "gpu_check: dry run OK (nothing was run on a GPU)"
  exit 0
fi

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu_check: FAILED: no CUDA device is available to torch $("$PYTHON" -c 'import torch; print(torch.__version__)')" \
    "(CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-unset}); this check needs one and does not skip" >&2
  exit 2
fi

status=0
step() {  # step NAME SECONDS COMMAND…: run with a time limit, record its exit status and seconds
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit}s)"
  local t0=$SECONDS rc=0
  timeout -k 10 "$limit" "$@" >"$WORK/$name.log" 2>&1 || rc=$?
  tail -n 25 "$WORK/$name.log"
  if [ "$rc" -eq 124 ]; then echo "gpu_check: $name ran past its ${limit}s limit" >&2; fi
  STEP=$((STEP + 1))
  echo "{\"name\": \"$name\", \"rc\": $rc, \"limit_s\": $limit, \"seconds\": $((SECONDS - t0))}" \
    >"$WORK/$(printf '%02d' "$STEP")_$name.step.json"
  if [ "$rc" -ne 0 ]; then status=1; fi
}
STEP=0

step cuda_tests 35 "${CUDA_TESTS[@]}"
step bench 110 "${BENCH[@]}"
step data 40 "${DATA[@]}"
step stage3_fit 115 "${FIT[@]}"

"$PYTHON" - "$WORK" "$OUT" "$FIT_STEPS" <<'PY' || status=1
import csv, json, sys, xml.etree.ElementTree as ET
from pathlib import Path

import torch

work, out, fit_steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
load = lambda p: json.loads(p.read_text()) if p.exists() else None
result = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
          "steps": [load(p) for p in sorted(work.glob("*.step.json"))]}
xml = work / "cuda_tests.xml"
if xml.exists():
    root = ET.parse(xml).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    result["cuda_tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
result["bench"] = load(work / "bench.json")
rows = [r for f in sorted((work / "stage3").glob("version_*/metrics.csv")) for r in csv.DictReader(f.open())]
rows = [{k: v for k, v in r.items() if v != ""} for r in rows if r.get("train/loss")]
done = int(rows[-1]["step"]) + 1 if rows else 0
profile = sorted((work / "stage3").glob("**/*profile*.txt"))
result["stage3_fit"] = {"steps_done": done, "steps_asked": fit_steps, "logged": rows[-5:],
                        "simple_profile": profile[0].read_text().splitlines() if profile else None}
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(result, indent=2) + "\n")
print(f"wrote {out}")
if done < fit_steps:
    print(f"gpu_check: stage3_fit did {done} of {fit_steps} steps within its time", file=sys.stderr)
    sys.exit(1)
PY
if [ "$status" -eq 0 ]; then echo "gpu_check: OK"; else echo "gpu_check: FAILED (see the steps above)" >&2; fi
exit "$status"
