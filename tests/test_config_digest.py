"""The digest that decides when make trains a finished stage again: config values and arguments, not comments."""

from __future__ import annotations

import os
from pathlib import Path

from tassn.config_digest import digest, main, update


def _config(tmp_path: Path, text: str, name: str = "stage.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_comments_and_layout_do_not_count_values_and_arguments_do(tmp_path) -> None:
    a = _config(tmp_path, "model:\n  lr: 0.001  # the step\n  widths: [32, 16]\n", "a.yaml")
    b = _config(tmp_path, "# a comment\nmodel:\n  widths:\n  - 32\n  - 16\n  lr: 1.0e-3\n", "b.yaml")
    c = _config(tmp_path, "model:\n  lr: 0.002\n  widths: [32, 16]\n", "c.yaml")
    base = digest([a], ["--seed_everything=0"])
    assert digest([b], ["--seed_everything=0"]) != base  # the file's name is part of what a stage was built from
    b.rename(a)
    assert digest([a], ["--seed_everything=0"]) == base
    c.rename(a)
    assert digest([a], ["--seed_everything=0"]) != base
    assert digest([a], ["--seed_everything=1"]) != digest([a], ["--seed_everything=0"])


def test_a_file_that_is_not_yaml_counts_by_its_bytes(tmp_path) -> None:
    bad = _config(tmp_path, "model: [unclosed\n")
    first = digest([bad], [])
    bad.write_text("model: [unclosed \n")
    assert digest([bad], []) != first


def _older(path: Path, than: Path) -> bool:
    return path.stat().st_mtime < than.stat().st_mtime


def test_update_dates_the_digest_by_what_the_target_was_made_with(tmp_path) -> None:
    cfg = _config(tmp_path, "lr: 1\n")
    out, done = tmp_path / "run" / "inputs.sha256", tmp_path / "run" / "fit.done"
    assert update(out, [cfg], ["a"], done) == "new"
    done.write_text(out.read_text())  # the Makefile copies the digest into fit.done when the stage finishes
    os.utime(done, (out.stat().st_mtime + 5,) * 2)
    assert update(out, [cfg], ["a"], done) == "same" and _older(out, done)
    assert update(out, [cfg], ["a", "--trainer.max_steps=5"], done) == "changed" and not _older(out, done)
    # back to the inputs it was made with: nothing to make again
    assert update(out, [cfg], ["a"], done) == "same" and _older(out, done)
    cfg.write_text("lr: 1  # only a comment\n")
    assert update(out, [cfg], ["a"], done) == "same" and _older(out, done)


def test_a_run_from_before_the_digest_is_adopted_only_when_newer_than_its_configs(tmp_path) -> None:
    cfg = _config(tmp_path, "lr: 1\n")
    out, done = tmp_path / "inputs.sha256", tmp_path / "fit.done"
    done.touch()
    os.utime(cfg, (done.stat().st_mtime - 10,) * 2)
    assert update(out, [cfg], [], done) == "same" and _older(out, done)
    assert done.read_text().strip() == out.read_text().strip()
    out.unlink()
    done.write_text("")
    os.utime(cfg, (done.stat().st_mtime + 10,) * 2)  # a config edited after the run: trained again, as before
    assert update(out, [cfg], [], done) == "changed" and not _older(out, done)


def test_a_missing_config_file_is_an_error_naming_it(tmp_path, capsys) -> None:
    assert main([str(tmp_path / "inputs.sha256"), str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert not (tmp_path / "inputs.sha256").exists()
