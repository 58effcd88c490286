"""bench_threads reads a step's training and data-waiting time from Lightning's simple-profiler report."""

from __future__ import annotations

import pytest
from benchmarks.bench_threads import profiled_means, step_seconds

REPORT = """\
FIT Profiler Report

|  Action                                      \t|  Mean duration (s)\t|  Num calls      \t|  Total time (s) \t|  Percentage %   \t|
|---------------------------------------------------------------------------------------------------------------|
|  Total                                       \t|  -              \t|  5223           \t|  32.65          \t|  100 %          \t|
|  run_training_batch                          \t|  0.25832        \t|  120            \t|  30.999         \t|  94.942         \t|
|  [_TrainingEpochLoop].train_dataloader_next  \t|  0.0051924      \t|  120            \t|  0.62309        \t|  1.9084         \t|
"""


def test_the_profiler_report_gives_training_and_waiting_seconds_per_step() -> None:
    means = profiled_means(REPORT)
    assert "Total" not in means  # no mean duration: not a timed action
    assert step_seconds(means) == pytest.approx((0.25832, 0.0051924))


def test_a_report_without_the_step_rows_is_an_error() -> None:
    with pytest.raises(ValueError, match="run_training_batch"):
        step_seconds(profiled_means("|  Total  |  -  |  1  |  1.0  |  100 %  |"))
