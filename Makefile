# tassn — every target a user runs. `make help` lists them.
#
# The training recipe (paper §4.3) as file dependencies, so that a finished stage is not trained again:
#   source data → pretrain (synthetic source domain, 3D labels) ──────────────┐ (mesh, pose)
#   target data ─┴→ stage 1 (heatmaps, L_h; starts from pretrain) ──────────┴→ stage 2 (heatmaps + mesh, L_h + λs·L_m)
#                                                                  → stage 3 (TASSN, Eq. 6) → test → table
# Each stage trains in runs/<DATA>-<CONFIG>/<stage>/ (pretrain in runs/source-<CONFIG>/pretrain/) and is done
# when its fit.done exists; a run that was stopped resumes from its checkpoints/last.ckpt. A finished stage trains
# again when a config value or an argument it was trained with changes (not for an edited comment; its
# inputs.sha256), and the previous run's checkpoints are moved to checkpoints.<n>/ first.
#   make train-stage3                            CPU sizes on the synthetic videos (its time: README, first section)
#   make train-stage3 DATA=stb DATA_ROOT=… CONFIG=paper      the paper's settings on STB (GPUs)
#   make train-stage3 VARIANT=no_lc                          an ablation of experiments/ablations/
SHELL := /bin/bash
PYTHON ?= python3
DATA ?= synthetic
CONFIG ?= cpu
RUNS ?= runs
DATA_ROOT ?=
SEED ?= 0
VARIANT ?=
SWEEP ?= experiments/sweeps/stage3.yaml
COUNT ?= 4
export OMP_NUM_THREADS ?= 2

STAMP := .install.stamp

# Training and evaluation run one compute thread per process unless TRAIN_THREADS says otherwise: on a 2-core
# machine shared with other processes, two OpenMP threads per process made a training step 7–60× slower (measured),
# while one thread costs little on an idle machine with this small CPU network. TRAIN_THREADS=2 on an idle machine.
TRAIN_THREADS ?= 1
TASSN := OMP_NUM_THREADS=$(TRAIN_THREADS) $(PYTHON) -m tassn
OVERLAY := experiments/$(CONFIG).yaml
DATA_CFG := experiments/data/$(DATA).yaml
SOURCE_CFG := experiments/data/synthetic_source.yaml
VARIANT_CFG := $(if $(VARIANT),experiments/ablations/$(VARIANT).yaml)
RUN := $(RUNS)/$(DATA)-$(CONFIG)
SOURCE_RUN := $(RUNS)/source-$(CONFIG)
STAGE3_DIR := $(RUN)/stage3$(if $(VARIANT),-$(VARIANT))
EVAL_DIR ?= $(RUN)/eval
CKPT ?=

TARGET_ARGS := --config $(DATA_CFG) $(if $(DATA_ROOT),--data.init_args.root=$(DATA_ROOT))
SOURCE_ARGS := --config $(SOURCE_CFG)
last = $(1)/checkpoints/last.ckpt
# the stage's own file and schedule overlay (experiments/<CONFIG>/<stage>.yaml, when there is one)
stage_files = experiments/$(1).yaml $(wildcard experiments/$(CONFIG)/$(1).yaml)
# TRAIN_ARGS: extra `tassn` arguments for every stage (e.g. "--data.init_args.crop_jitter=0.15"); like a changed config
# value, they make a finished stage train again (its checkpoints set aside), so give such a run its own RUNS=… folder
TRAIN_ARGS ?=
# $(call configs,STAGE): the config files of a stage, in composition order (stage, data, sizes, schedule), then
# the seed and TRAIN_ARGS
configs = --config experiments/$(1).yaml $(2) --config $(OVERLAY) \
	$(addprefix --config ,$(wildcard experiments/$(CONFIG)/$(1).yaml)) --seed_everything=$(SEED) $(TRAIN_ARGS)

# $(call fit,RUN_DIR,ARGS): train into RUN_DIR; resume from its last.ckpt when there is one, unless the stage had
# finished before: then its inputs changed, its checkpoints are moved to RUN_DIR/checkpoints.<n> (never overwritten)
# and it starts over. fit.done marks a finished stage and holds the digest of the inputs it was trained with.
define fit
	@if [ -f $(1)/fit.done ] && [ -d $(1)/checkpoints ]; then n=1; while [ -e $(1)/checkpoints.$$n ]; do n=$$((n+1)); done; \
	  mv $(1)/checkpoints $(1)/checkpoints.$$n && rm -f $(1)/fit.done && \
	  echo "make: $(1) trains again with its new inputs; the previous run's checkpoints are kept in $(1)/checkpoints.$$n" >&2; fi
	$(TASSN) fit $(2) --trainer.default_root_dir=$(1) \
	  $(if $(wildcard $(1)/fit.done),,$(if $(wildcard $(call last,$(1))),--ckpt_path=last))
	@cp $(1)/inputs.sha256 $(1)/fit.done
endef

# $(call digest,DONE,FILES,ARGS): the rule of DONE's digest file, $(@) — FILES by their parsed content and ARGS,
# rewritten only when they change (src/tassn/config_digest.py). A target that depends on it is made again when a
# config value, the seed or TRAIN_ARGS change, not when a file is only touched or a comment edited. The `+` runs it
# under `make -n` too, so a dry run lists only what would really run.
digest = +@PYTHONPATH=src$${PYTHONPATH:+:$$PYTHONPATH} $(PYTHON) -m tassn.config_digest $@ --done $(1) $(2) -- $(3)
.PHONY: FORCE
FORCE:

.PHONY: help install test test-slow lint data data-all data-and-pretrain pretrain train-stage1 train-stage2 train-tracker train-detector train-stage3 eval report sweep \
	check-config
help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt setup.cfg
	$(PYTHON) -m pip install --quiet "torch==2.13.0" || $(PYTHON) -m pip install --quiet "torch>=2.10,<2.14"
	$(PYTHON) -m pip install --quiet -r requirements.txt
	$(PYTHON) -m pip install --quiet --no-deps -e ".[dev]"
	$(PYTHON) -m pip install --quiet "pytest>=8" "ruff>=0.5"
	@touch $(STAMP)

install: $(STAMP) ## install tassn and its dependencies (CPU torch 2.13.0 where its wheel is on disk)

test: $(STAMP) ## run the fast test suite (CPU, a few minutes)
	$(PYTHON) -m pytest -q

test-slow: $(STAMP) ## run the slow tests only
	$(PYTHON) -m pytest -q -m slow

lint: $(STAMP) ## ruff
	$(PYTHON) -m ruff check src data_modules tests benchmarks

check-config:
	@for f in $(OVERLAY) $(DATA_CFG) $(VARIANT_CFG); do \
	  [ -f "$$f" ] || { echo "make: $$f not found (CONFIG=$(CONFIG) DATA=$(DATA) VARIANT=$(VARIANT)); see experiments/" >&2; exit 2; }; \
	done
	@if [ "$(DATA)" != synthetic ] && [ -n "$(DATA_ROOT)" ] && [ ! -d "$(DATA_ROOT)" ]; then \
	  echo "make: DATA_ROOT=$(DATA_ROOT) is not a folder; point it at the $(DATA) dataset (docs/datasets.md)" >&2; exit 2; fi

# ------------------------------------------------------------------------------------------------------- data
$(RUN)/data.done: $(RUN)/data.inputs.sha256 | $(STAMP) check-config
	$(TASSN) prepare $(call configs,stage1,$(TARGET_ARGS))
	@mkdir -p $(@D) && cp $(RUN)/data.inputs.sha256 $@
$(RUN)/data.inputs.sha256: FORCE | $(STAMP)
	$(call digest,$(RUN)/data.done,$(DATA_CFG) $(OVERLAY),$(TARGET_ARGS))

$(SOURCE_RUN)/data.done: $(SOURCE_RUN)/data.inputs.sha256 | $(STAMP) check-config
	$(TASSN) prepare $(call configs,pretrain,$(SOURCE_ARGS))
	@mkdir -p $(@D) && cp $(SOURCE_RUN)/data.inputs.sha256 $@
$(SOURCE_RUN)/data.inputs.sha256: FORCE | $(STAMP)
	$(call digest,$(SOURCE_RUN)/data.done,$(SOURCE_CFG) $(OVERLAY) $(call stage_files,pretrain),$(SOURCE_ARGS))

data: $(RUN)/data.done ## generate/check the target data (DATA=synthetic|stb|mhp, DATA_ROOT=…) and its GrabCut silhouettes

# The source and the target data are independent one-thread jobs: made side by side (two processes, -j2), the data
# step costs the longer of the two instead of their sum (about 2 minutes less on 2 cores).
data-all: | $(STAMP) check-config ## generate/check the source and the target data side by side
	@$(MAKE) --no-print-directory -j2 $(SOURCE_RUN)/data.done $(RUN)/data.done

# The pre-training reads the source data only, and the source is made sooner than the target (whose GrabCut
# silhouettes come last): as two one-thread jobs, the pre-training starts beside the rest of the target data.
data-and-pretrain: | $(STAMP) check-config ## the source data, then the pre-training beside the rest of the target data
	@$(MAKE) --no-print-directory -j2 $(SOURCE_RUN)/pretrain/fit.done $(RUN)/data.done

# ----------------------------------------------------------------------------------------------------- stages
# Each stage's arguments; its inputs.sha256 (the digest of its config files and these) is what it depends on.
PRETRAIN_ARGS = $(call configs,pretrain,$(SOURCE_ARGS))
STAGE1_ARGS = $(call configs,stage1,$(TARGET_ARGS)) --model.init_args.init_from=$(call last,$(SOURCE_RUN)/pretrain)
STAGE2_ARGS = $(call configs,stage2,$(TARGET_ARGS)) --model.init_args.init_heatmap_from=$(call last,$(RUN)/stage1) \
	  --model.init_args.init_mesh_from=$(call last,$(SOURCE_RUN)/pretrain)
TRACKER_ARGS = $(call configs,stage1,$(TARGET_ARGS)) --config experiments/tracker.yaml \
	  --model.init_args.init_from=$(call last,$(RUN)/stage1)
STAGE3_ARGS = $(call configs,stage3,$(TARGET_ARGS) $(addprefix --config ,$(VARIANT_CFG))) \
	  --model.init_args.init_from=$(call last,$(RUN)/stage2)

$(SOURCE_RUN)/pretrain/fit.done: $(SOURCE_RUN)/data.done $(SOURCE_RUN)/pretrain/inputs.sha256 | $(STAMP)
	$(call fit,$(@D),$(PRETRAIN_ARGS))
$(SOURCE_RUN)/pretrain/inputs.sha256: FORCE | $(STAMP)
	$(call digest,$(@D)/fit.done,$(call stage_files,pretrain) $(SOURCE_CFG) $(OVERLAY),$(PRETRAIN_ARGS))

$(RUN)/stage1/fit.done: $(RUN)/data.done $(SOURCE_RUN)/pretrain/fit.done $(RUN)/stage1/inputs.sha256 | $(STAMP)
	$(call fit,$(@D),$(STAGE1_ARGS))
$(RUN)/stage1/inputs.sha256: FORCE | $(STAMP)
	$(call digest,$(@D)/fit.done,$(call stage_files,stage1) $(DATA_CFG) $(OVERLAY),$(STAGE1_ARGS))

$(RUN)/stage2/fit.done: $(RUN)/stage1/fit.done $(SOURCE_RUN)/pretrain/fit.done $(RUN)/stage2/inputs.sha256 | $(STAMP)
	$(call fit,$(@D),$(STAGE2_ARGS))
$(RUN)/stage2/inputs.sha256: FORCE | $(STAMP)
	$(call digest,$(@D)/fit.done,$(call stage_files,stage2) $(DATA_CFG) $(OVERLAY),$(STAGE2_ARGS))

# the tracking crop's locator (tassn predict --tracker-ckpt): stage 1 fine-tuned on jittered crops
$(RUN)/tracker/fit.done: $(RUN)/stage1/fit.done $(RUN)/tracker/inputs.sha256 | $(STAMP)
	$(call fit,$(@D),$(TRACKER_ARGS))
$(RUN)/tracker/inputs.sha256: FORCE | $(STAMP)
	$(call digest,$(@D)/fit.done,$(call stage_files,stage1) experiments/tracker.yaml $(DATA_CFG) $(OVERLAY),$(TRACKER_ARGS))

# the first-box hand detector (tassn predict --detector-ckpt): whole target frames and their hand boxes; a run with
# new inputs sets the previous checkpoints aside (checkpoints.<n>) as `tassn fit` does
DETECTOR_ARGS = $(TARGET_ARGS) --config $(OVERLAY) --config experiments/detector.yaml --seed $(SEED) $(TRAIN_ARGS)
$(RUN)/detector/fit.done: $(RUN)/data.done $(RUN)/detector/inputs.sha256 | $(STAMP)
	$(TASSN) train-detector $(DETECTOR_ARGS) --out $(@D)
	@cp $(@D)/inputs.sha256 $@
$(RUN)/detector/inputs.sha256: FORCE | $(STAMP)
	$(call digest,$(@D)/fit.done,experiments/detector.yaml $(DATA_CFG) $(OVERLAY),$(DETECTOR_ARGS))

$(STAGE3_DIR)/fit.done: $(RUN)/stage2/fit.done $(STAGE3_DIR)/inputs.sha256 | $(STAMP)
	$(call fit,$(@D),$(STAGE3_ARGS))
$(STAGE3_DIR)/inputs.sha256: FORCE | $(STAMP)
	$(call digest,$(@D)/fit.done,$(call stage_files,stage3) $(VARIANT_CFG) $(DATA_CFG) $(OVERLAY),$(STAGE3_ARGS))

$(STAGE3_DIR)/test.done: $(STAGE3_DIR)/fit.done
	$(TASSN) test $(call configs,stage3,$(TARGET_ARGS)) \
	  --trainer.default_root_dir=$(STAGE3_DIR) --ckpt_path=$(call last,$(STAGE3_DIR))
	@touch $@

pretrain: $(SOURCE_RUN)/pretrain/fit.done ## pretrain the mesh and pose estimators on the synthetic source domain (3D labels)

train-stage1: $(RUN)/stage1/fit.done ## stage 1: heatmap estimator with L_h on the target data (from pretrain)

train-stage2: $(RUN)/stage2/fit.done ## stage 2: heatmaps + mesh with L_h + λs·L_m (from stage 1 and pretrain)

train-tracker: $(RUN)/tracker/fit.done ## the tracking crop's locator: stage 1 fine-tuned on jittered crops (predict --tracker-ckpt)

train-detector: $(RUN)/detector/fit.done ## the whole-frame hand detector that gives the tracking crop its first box (predict --detector-ckpt)

train-stage3: data-and-pretrain ## the whole recipe through stage 3 (TASSN), then test and print the table
	@$(MAKE) --no-print-directory $(STAGE3_DIR)/test.done
	$(TASSN) report $(STAGE3_DIR)

report: ## print the results table of the last test run(s) of this DATA/CONFIG beside the paper's Table 1
	@runs="$(wildcard $(RUN)/stage3*/test.done $(EVAL_DIR))"; \
	  [ -n "$$runs" ] || { echo "make report: no test results under $(RUN); run make train-stage3 first" >&2; exit 2; }; \
	  $(TASSN) report $(patsubst %/test.done,%,$(wildcard $(RUN)/stage3*/test.done)) $(wildcard $(EVAL_DIR))

eval: | $(STAMP) check-config ## test a checkpoint on the target data's test split: make eval CKPT=path/to.ckpt
	@if [ -z "$(CKPT)" ] || [ ! -f "$(CKPT)" ]; then \
	  echo "make eval: checkpoint CKPT='$(CKPT)' not found; pass CKPT=path/to.ckpt (e.g. $(call last,$(STAGE3_DIR)))" >&2; \
	  exit 2; fi
	$(TASSN) test $(call configs,stage3,$(TARGET_ARGS)) --trainer.default_root_dir=$(EVAL_DIR) --ckpt_path=$(CKPT)
	$(TASSN) report $(EVAL_DIR)

sweep: $(RUN)/stage2/fit.done ## run a W&B sweep of stage 3 (SWEEP=file, COUNT trials; needs `wandb login`)
	@$(PYTHON) -c "from tassn.cli import wandb_mode; import sys; \
	  sys.exit(0 if wandb_mode() == 'online' else 'make sweep: W&B sweeps need the W&B server; run \`wandb login\` first')"
	@set -o pipefail; id=$$(wandb sweep "$(SWEEP)" 2>&1 | tee /dev/stderr | sed -n 's/.*wandb agent \([^ ]*\).*/\1/p' | tail -n 1); \
	  [ -n "$$id" ] || { echo "make sweep: could not read the sweep id from 'wandb sweep $(SWEEP)'" >&2; exit 2; }; \
	  wandb agent --count $(COUNT) "$$id"

# ------------------------------------------------------------------------------------------------- benchmarks
# `make ablation`: the paper's Table 1 on our data (docs/results.md).
#
# Per seed s, in $(ABLATION_RUNS)/seed-<s>/ (so no run of `make train-stage3` is touched), the whole recipe is
# trained with --seed_everything=s by the Makefile's own rules (pretrain → stage 1 → stage 2), then from that one
# stage-2 checkpoint three stage-3 runs: full TASSN, w/o L_c^m (experiments/ablations/no_lc_mesh.yaml) and
# w/o L_c (experiments/ablations/no_lc.yaml). Beside them, on the same held-out target test videos:
#   eval-mean_pose  the mean pose of the source training videos on every frame (benchmarks/mean_pose.py)
#   eval-pretrain   the source-pretrained model (3D labels of the source domain only, no target training)
#   eval-stage1     the stage-1 model (target 2D heatmaps; its 3D is the pre-training's)
#   eval-stage2     the stage-2 model (target 2D labels + silhouettes, no temporal training)
#   upper_bound     the pretrained model trained further with the target's own 3D labels on the same target
#                   training videos (experiments/ablations/upper_bound.yaml, the pre-training's schedule)
# Every run is a file target (fit.done / test.done), so an interrupted `make ablation` goes on where it stopped
# and a finished run is never trained again. Seeds are independent goals: `make -j2 ablation` runs two at once.
# benchmarks/ablation_report.py then writes the table, JSON and PNG.

SEEDS ?= 0 1 2
ABLATION_RUNS ?= $(RUNS)/ablation
ABLATION_OUT ?= benchmarks/results
ABLATION_PNG ?= docs/images/ablation_pck.png
ABLATION_JSON ?= docs/results.json
ABLATION_VARIANTS := no_lc no_lc_mesh
ABLATION_UPPER_CFG := experiments/ablations/upper_bound.yaml
# the upper bound needs 3D mesh labels for training, which only the synthetic videos have (STB and MHP: the
# paper's own upper bounds are the published 3D-supervised methods, docs/results.md)
ABLATION_UPPER := $(if $(filter synthetic,$(DATA)),$(RUN)/upper_bound/test.done)

# $(call ablation_test,RUN_DIR,CKPT): test CKPT on the target test split into RUN_DIR (with the stage-3 config, as
# `make eval` does: the same network and data for every model, whichever stage wrote the checkpoint)
define ablation_test
	$(TASSN) test $(call configs,stage3,$(TARGET_ARGS)) --trainer.default_root_dir=$(1) --ckpt_path=$(2)
	@touch $(1)/test.done
endef

.PHONY: ablation-one $(addprefix ablation-seed-,$(SEEDS))

$(addprefix ablation-seed-,$(SEEDS)): ablation-seed-%: | $(STAMP) check-config
	$(MAKE) --no-print-directory ablation-one SEED=$* RUNS=$(ABLATION_RUNS)/seed-$*

# One seed (RUN and SOURCE_RUN carry RUNS=$(ABLATION_RUNS)/seed-<s> here); the stage-3 variants go through the
# stage-3 rule above, one VARIANT per sub-make.
ablation-one: $(RUN)/eval-mean_pose/test.done $(RUN)/eval-pretrain/test.done $(RUN)/eval-stage1/test.done \
	  $(RUN)/eval-stage2/test.done
	$(MAKE) --no-print-directory $(RUN)/stage3/test.done VARIANT=
	$(foreach v,$(ABLATION_VARIANTS),$(MAKE) --no-print-directory $(RUN)/stage3-$(v)/test.done VARIANT=$(v) &&) true
	$(if $(ABLATION_UPPER),$(MAKE) --no-print-directory $(ABLATION_UPPER))

$(RUN)/eval-pretrain/test.done: $(SOURCE_RUN)/pretrain/fit.done $(RUN)/data.done
	$(call ablation_test,$(@D),$(call last,$(SOURCE_RUN)/pretrain))

$(RUN)/eval-mean_pose/test.done: $(SOURCE_RUN)/data.done $(RUN)/data.done benchmarks/mean_pose.py
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(PYTHON) benchmarks/mean_pose.py --out $(@D) --data $(DATA_CFG) --config $(CONFIG) \
	  $(if $(DATA_ROOT),-- --data.init_args.root=$(DATA_ROOT))
	@touch $@

$(RUN)/eval-stage1/test.done: $(RUN)/stage1/fit.done
	$(call ablation_test,$(@D),$(call last,$(RUN)/stage1))

$(RUN)/eval-stage2/test.done: $(RUN)/stage2/fit.done
	$(call ablation_test,$(@D),$(call last,$(RUN)/stage2))

UPPER_ARGS = $(call configs,pretrain,$(TARGET_ARGS)) --config $(ABLATION_UPPER_CFG) \
	  --model.init_args.init_from=$(call last,$(SOURCE_RUN)/pretrain)
$(RUN)/upper_bound/fit.done: $(RUN)/data.done $(SOURCE_RUN)/pretrain/fit.done $(RUN)/upper_bound/inputs.sha256 | $(STAMP)
	$(call fit,$(@D),$(UPPER_ARGS))
$(RUN)/upper_bound/inputs.sha256: FORCE | $(STAMP)
	$(call digest,$(@D)/fit.done,$(call stage_files,pretrain) $(ABLATION_UPPER_CFG) $(DATA_CFG) $(OVERLAY),$(UPPER_ARGS))

$(RUN)/upper_bound/test.done: $(RUN)/upper_bound/fit.done
	$(call ablation_test,$(@D),$(call last,$(@D)))

# `make bench`: speed and memory (docs/results.md). `make gpu-check`: benchmarks/gpu_check.sh on a CUDA machine; it
# fails (exit 2) where torch sees no CUDA device.
BENCH_DEVICE ?= cpu
BENCH_ARGS ?=
GPU_CHECK_OUT ?= benchmarks/results/gpu_check.json

.PHONY: ablation bench gpu-check
ablation: $(addprefix ablation-seed-,$(SEEDS)) ## Table 1: stage 3 w/o L_c, w/o L_c^m, full + baselines per seed (SEEDS="0 1 2"), table + PCK PNG
	$(PYTHON) benchmarks/ablation_report.py $(ABLATION_RUNS) --data $(DATA) --config $(CONFIG) --seeds $(SEEDS) \
	  --out $(ABLATION_OUT) --png $(ABLATION_PNG) --results-json $(ABLATION_JSON)

bench: | $(STAMP) ## speed and memory: PME nets, training throughput per stage, renderer (BENCH_DEVICE=cpu|cuda)
	$(PYTHON) benchmarks/bench_nets.py
	$(PYTHON) benchmarks/bench_train.py --device $(BENCH_DEVICE) $(BENCH_ARGS)

bench-fresh-clone: ## time `make train-stage3` from a fresh clone of HEAD, step by step (idle machine; 27–29 min) → JSON
	$(PYTHON) benchmarks/fresh_clone_time.py --out benchmarks/results/fresh_clone_time.json

gpu-check: | $(STAMP) ## on a CUDA machine (≤ 5 min): CUDA tests, bench at the paper size in bf16, 50 stage-3 steps → one JSON
	PYTHON=$(PYTHON) bash benchmarks/gpu_check.sh $(GPU_CHECK_OUT)

# `make peer-mediapipe`: MediaPipe Hands, zero-shot, beside our models on the same split and crops (docs/results.md).
# MediaPipe lives in its own virtual environment (mediapipe 0.10.21 needs numpy < 2 and protobuf < 5, which the
# project's environment does not have); nothing else depends on it. Default: the synthetic target test and source
# validation videos; DATA=stb|mhp DATA_ROOT=… scores the real test split instead.
MEDIAPIPE_VENV ?= .venv-mediapipe
MEDIAPIPE_PIN ?= mediapipe==0.10.21 numpy<2 protobuf<5
PEER_ARGS ?=

.PHONY: peer-mediapipe
$(MEDIAPIPE_VENV)/.installed:
	@$(PYTHON) -m venv $(MEDIAPIPE_VENV) || { echo "make peer-mediapipe: could not create the virtual environment \
	  $(MEDIAPIPE_VENV) with $(PYTHON) -m venv" >&2; exit 2; }
	@$(MEDIAPIPE_VENV)/bin/python -m pip install --quiet $(foreach p,$(MEDIAPIPE_PIN),'$(p)') \
	  && $(MEDIAPIPE_VENV)/bin/python -c "import mediapipe" || { \
	  echo "make peer-mediapipe: no MediaPipe wheel installs here ($(MEDIAPIPE_PIN) for $$($(PYTHON) -c \
	  'import platform, sys; print(f"Python {sys.version.split()[0]}, {platform.system()} {platform.machine()}")'));" \
	  "MediaPipe publishes wheels for CPython 3.9–3.12 on Linux x86_64/aarch64, macOS and Windows. The peer" \
	  "benchmark is skipped; nothing else needs it." >&2; rm -rf $(MEDIAPIPE_VENV); exit 3; }
	@touch $@

peer-mediapipe: $(MEDIAPIPE_VENV)/.installed | $(STAMP) ## MediaPipe Hands on the same split and crops (own venv): table, JSON, PNG
	$(PYTHON) benchmarks/peer_mediapipe.py --python $(MEDIAPIPE_VENV)/bin/python --config $(CONFIG) \
	  $(if $(filter-out synthetic,$(DATA)),--data $(DATA_CFG)) $(if $(DATA_ROOT),--root $(DATA_ROOT)) $(PEER_ARGS)

# `make bench-predict`: video prediction with the tracking crop against the same model on ground-truth crops, on
# the synthetic target test videos (docs/results.md). CKPT= picks the checkpoint (default: this RUN's stage 3),
# TRACKER= the checkpoint that places the tracking crop (default: this RUN's `make train-tracker` one when it exists;
# TRACKER=none: the checkpoint tracks itself).
# BENCH_PREDICT_ARGS passes options (e.g. "--split val --refine 1"; settings are chosen on --split val).
PREDICT_CKPT = $(if $(CKPT),$(CKPT),$(call last,$(STAGE3_DIR)))
TRACKER ?= $(wildcard $(call last,$(RUN)/tracker))
PREDICT_TRACKER = $(if $(filter-out none,$(TRACKER)),--tracker-ckpt $(TRACKER))
# DETECTOR= the hand detector whose box a first frame's search starts from (default: this RUN's `make train-detector`
# one when it exists; DETECTOR=none: the search's grid of candidates)
DETECTOR ?= $(wildcard $(RUN)/detector/checkpoints/best.ckpt)
PREDICT_DETECTOR = $(if $(filter-out none,$(DETECTOR)),--detector-ckpt $(DETECTOR))
BENCH_PREDICT_ARGS ?=
.PHONY: bench-predict
bench-predict: | $(STAMP) ## tracked vs ground-truth-crop 2D error/PCK and crop sides on the synthetic test videos (CKPT=…)
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(PYTHON) benchmarks/bench_predict.py --ckpt $(PREDICT_CKPT) $(PREDICT_TRACKER) $(PREDICT_DETECTOR) \
	  --data $(if $(DATA_ROOT),$(DATA_ROOT),data/synthetic) --out benchmarks/results/predict.json $(BENCH_PREDICT_ARGS)

# `make data-tracking-val`: 32 target validation videos for choosing tracking settings (8 proved too few; the first
# 8 are the recipe's validation videos): `make bench-predict DATA_ROOT=data/synthetic-val32 BENCH_PREDICT_ARGS="--split val"`.
TRACKING_VAL_ROOT ?= data/synthetic-val32
.PHONY: data-tracking-val
data-tracking-val: | $(STAMP) ## 32 target validation videos to choose tracking settings on (bench-predict DATA_ROOT=…)
	$(PYTHON) -m data_modules.synthetic --root $(TRACKING_VAL_ROOT) --domains target --splits val --num-val-videos 32 \
	  --frames-per-video 32 --image-size 128

# `make bench-confidence`, `make bench-adapt`: the forward/backward confidence against the 3D joint error, and
# `tassn adapt` before/after, on the synthetic target test videos (docs/results.md, "Temporal quality"). Both run
# `tassn predict --video` on folders holding only the frames and read the labels afterwards, to score. CKPT= as for
# bench-predict; SEEDS= the adapt seeds; BENCH_CONFIDENCE_ARGS / BENCH_ADAPT_ARGS pass options (e.g. "--limit 2",
# "--steps 50").
BENCH_CONFIDENCE_ARGS ?=
BENCH_ADAPT_ARGS ?=
.PHONY: bench-confidence bench-adapt
bench-confidence: | $(STAMP) ## confidence vs 3D joint error on the synthetic test videos: AUROC (error > 20 mm), PNG, JSON (CKPT=…)
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(PYTHON) benchmarks/bench_confidence.py --ckpt $(PREDICT_CKPT) \
	  --data $(if $(DATA_ROOT),$(DATA_ROOT),data/synthetic) --out benchmarks/results/confidence.json \
	  --png docs/images/confidence_error.png $(BENCH_CONFIDENCE_ARGS)

bench-adapt: | $(STAMP) ## tassn adapt per synthetic test video and seed: PCK, EPE, PA-EPE, ACCEL before/after (CKPT=… SEEDS=…)
	OMP_NUM_THREADS=$(TRAIN_THREADS) $(PYTHON) benchmarks/bench_adapt.py --ckpt $(PREDICT_CKPT) --seeds $(SEEDS) \
	  --data $(if $(DATA_ROOT),$(DATA_ROOT),data/synthetic) --out benchmarks/results/adapt.json --markdown benchmarks/results/adapt.md $(BENCH_ADAPT_ARGS)
