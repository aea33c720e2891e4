"""The grid end to end at the smoke preset: outputs, resume, failures, errors, interruption."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import torch

import benchmark.engine.recipe as recipe
import benchmark.store.rows as store
from benchmark.cli import main
from benchmark.engine.config import GridConfig
from benchmark.plugins import Budget, Countermeasure, Method
from benchmark.registry import countermeasures, methods
from benchmark.store.rows import RunLock


@pytest.fixture
def argv(tmp_path, data_root):
    def make(*extra: str) -> list[str]:
        return ["run", "--preset", "smoke", "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
                "--data-root", data_root, "--device", "cpu", "--no-progress", *extra]
    return make


def _rows(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_smoke_grid_of_every_countermeasure_end_to_end_then_resume_trains_nothing(tmp_path, argv, monkeypatch):
    defenses = countermeasures.selections()["all"]  # the protocol's: the `extra` suite is not in `all`
    assert len(defenses) == 19 and "coin" not in defenses
    assert main(argv("--methods", "lsp", "--no-clean", "--defenses", "all")) == 0
    rows = _rows(tmp_path)
    assert len(rows) == 19 and all(r["status"] == "ok" for r in rows)
    assert {(r["method"], r["countermeasure"]) for r in rows} == {("lsp", d) for d in defenses}
    row = rows[0]
    assert row["perturbation"]["l2_max"] <= 1.3044 and row["identity"]["preset"]["model"] == "tinycnn"
    assert 0 <= row["final_acc"] <= row["peak_acc"] <= 1 and row["seconds"]["train"] > 0
    assert not any(r["generation_cached"] for r in rows), "every set was made by this run, none came from a cache"

    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv", index_col="method")
    assert list(board.columns) == [*defenses, "worst", "mean", "psnr_db", "ssim", "linf_255", "l2", "threat",
                                   "budget_class", "class_rank"]
    assert list(board.index) == ["lsp"] and board.at["lsp", "budget_class"] == "≥ 30 dB"
    assert (board["worst"] == board[defenses].max(axis=1)).all()
    md = (tmp_path / "run" / "leaderboard.md").read_text()
    assert "| lsp " in md and "worst" in md
    assert (tmp_path / "run" / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"

    calls = []
    monkeypatch.setattr(recipe, "train_victim", lambda *a, **k: calls.append(a))
    assert main(argv("--methods", "lsp", "--no-clean", "--defenses", "all")) == 0
    assert calls == [] and len(_rows(tmp_path)) == 19


def test_a_failing_cell_becomes_a_failed_row_and_the_grid_goes_on(tmp_path, argv, temp_plugin):
    broken = [True]

    @dataclass
    class Boom(Countermeasure):
        """Fails while `broken`."""

        def preprocess(self, images, labels, ctx):
            if broken[0]:
                raise RuntimeError("kaboom")
            return images

    temp_plugin(countermeasures, "boom", Boom)
    assert main(argv("--methods", "ops", "--no-clean", "--defenses", "boom,none")) == 1
    rows = {r["countermeasure"]: r for r in _rows(tmp_path)}
    assert rows["boom"]["status"] == "failed" and rows["boom"]["error"] == "RuntimeError: kaboom"
    assert rows["none"]["status"] == "ok"
    assert "failed" in (tmp_path / "run" / "leaderboard_status.csv").read_text()

    broken[0] = False  # a rerun retries the failed cell only; its new row supersedes the failed one
    assert main(argv("--methods", "ops", "--no-clean", "--defenses", "boom,none")) == 0
    again = _rows(tmp_path)
    assert [r["status"] for r in again if r["countermeasure"] == "boom"] == ["failed", "ok"]
    assert len([r for r in again if r["countermeasure"] == "none"]) == 1
    assert "failed" not in (tmp_path / "run" / "leaderboard_status.csv").read_text()


def test_unknown_names_fail_with_the_valid_names(argv, capsys):
    assert main(argv("--methods", "nope")) == 2
    assert "unknown method 'nope'; valid methods: clean, dh, dh-8, dh-robust, em, em-classwise, rem, sem, tap, hypo, ops" in capsys.readouterr().err
    assert main(argv("--defenses", "none,jpeg")) == 2
    assert "valid countermeasures: none, cutout, cutmix, mixup, autoaugment" in capsys.readouterr().err
    assert main(argv("--defense-args", "jpeg10.qual=3")) == 2
    assert "no parameter 'qual'" in capsys.readouterr().err


def test_interrupt_keeps_finished_cells_and_prints_the_resume_command(tmp_path, argv, temp_plugin, capsys):
    @dataclass
    class Interrupt(Countermeasure):
        """Simulates Ctrl-C."""

        def preprocess(self, images, labels, ctx):
            raise KeyboardInterrupt

    temp_plugin(countermeasures, "zz-interrupt", Interrupt)
    args = argv("--methods", "ops", "--no-clean", "--defenses", "none,zz-interrupt")
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "Resume with: python -m benchmark run" in err and "zz-interrupt" in err
    assert [r["countermeasure"] for r in _rows(tmp_path)] == ["none"]
    board = pd.read_csv(tmp_path / "run" / "leaderboard.csv", index_col="method")  # rendered on the way out
    assert list(board.index) == ["ops"] and board.at["ops", "none"] == pytest.approx(100 * _rows(tmp_path)[0]["final_acc"], abs=0.01)


def test_parallel_jobs_match_the_grid(tmp_path, argv):
    assert main(argv("--methods", "ops", "--defenses", "none,grayscale", "--jobs", "2")) == 0
    rows = _rows(tmp_path)
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)


def test_generation_cached_means_made_by_an_earlier_run(tmp_path, argv):
    assert main(argv("--methods", "ops", "--no-clean", "--defenses", "none,grayscale")) == 0
    assert [r["generation_cached"] for r in _rows(tmp_path)] == [False, False]
    assert main(argv("--methods", "ops", "--no-clean", "--defenses", "none,grayscale", "--out", str(tmp_path / "b"))) == 0
    again = [json.loads(line) for line in (tmp_path / "b" / "results.jsonl").read_text().splitlines()]
    assert [r["generation_cached"] for r in again] == [True, True]


def test_rows_carry_their_provenance(tmp_path, argv):
    assert main(argv("--methods", "ops", "--no-clean", "--defenses", "none")) == 0
    (row,) = _rows(tmp_path)
    for library in ("torch", "kornia", "torchattacks", "diffusers", "Pillow", "numpy"):
        assert row["versions"][library], library
    # only the plugins that made the row: an unrelated plugin installed later does not make it look stale
    assert row["versions"]["plugins"] == {"method": {"ops": "1"}, "countermeasure": {"none": "1"},
                                          "model": {"tinycnn": "1"}}
    assert row["threads"] >= 1 and row["device"] == "cpu" and row["device_name"]
    assert isinstance(row["git_dirty"], bool) and len(row["git_commit"]) == 40
    assert row["identity"]["method"] == {"name": "ops", "version": "1", "distribution": None, "settings": {}}
    assert row["schema"] == 2 and row["method_label"] == "ops"


def test_a_second_run_on_the_same_folder_is_refused_naming_the_holder(tmp_path, argv, capsys):
    with RunLock(tmp_path / "run"):
        assert main(argv("--methods", "ops", "--no-clean", "--defenses", "none")) == 2
    err = capsys.readouterr().err
    assert f"is in use by process {os.getpid()}" in err
    assert not (tmp_path / "run" / "results.jsonl").exists()


@pytest.mark.parametrize("flag, arg", [("--defense-args", "gaussian_blur.sigma=inf"), ("--defense-args", "mixup.alpha=inf"),
                                       ("--defense-args", "ortho_projection.lr=inf"), ("--method-args", "dh.lfc_weight=nan")])
def test_non_finite_parameters_are_refused_up_front(tmp_path, argv, capsys, flag, arg):
    assert main(argv("--methods", "ops", "--defenses", "none", flag, arg)) == 2
    name, value = arg.split("=")
    assert f"{name} must be a finite number, got {value}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_non_finite_number_in_a_row_does_not_stop_the_grid(tmp_path, argv, temp_plugin):
    @dataclass
    class Noted(Method):
        """Reports a NaN statistic."""

        budget = Budget("linf", 0.0)

        def generate(self, images, labels, ctx):
            ctx.notes["score"] = float("nan")
            return images.clone()

    temp_plugin(methods, "zz-noted", Noted)
    assert main(argv("--methods", "zz-noted", "--no-clean", "--defenses", "none,grayscale")) == 0
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert rows[0]["method_notes"]["score"] is None and rows[0]["non_finite"] == ["method_notes.score"]


@pytest.mark.parametrize("extra, message", [
    (("--jobs", "0"), "--jobs must be at least 1, got 0"),
    (("--methods", "", "--no-clean"), "no methods selected; valid methods: clean, dh"),
    (("--defenses", ","), "no countermeasures selected; valid countermeasures: none, cutout"),
])
def test_bad_grids_fail_before_any_work(tmp_path, argv, capsys, extra, message):
    assert main(argv("--methods", "ops", *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_a_missing_data_root_fails_before_any_work(tmp_path, argv, capsys):
    args = argv("--methods", "all", "--defenses", "all")
    args[args.index("--data-root") + 1] = str(tmp_path / "nowhere")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in err and "--download" in err
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_an_unwritable_output_folder_and_a_missing_gpu_fail_before_any_work(tmp_path, argv, capsys):
    (tmp_path / "file").write_text("")
    assert main(argv("--methods", "ops", "--out", str(tmp_path / "file" / "run"))) == 2
    assert "output folder" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(argv("--methods", "ops", "--device", "cuda")) == 2
        assert "sees no GPU" in capsys.readouterr().err


def test_failed_rows_carry_the_parameters_that_caused_them(tmp_path, argv, temp_plugin):
    @dataclass
    class Fragile(Countermeasure):
        """Fails for large sizes."""

        size: int = 1

        def preprocess(self, images, labels, ctx):
            raise RuntimeError(f"size {self.size} is too large")

    temp_plugin(countermeasures, "zz-fragile", Fragile)
    assert main(argv("--methods", "ops", "--no-clean", "--defenses", "zz-fragile",
                     "--defense-args", "zz-fragile.size=7")) == 1
    (row,) = _rows(tmp_path)
    assert row["status"] == "failed" and row["countermeasure_params"] == {"size": 7}
    assert row["countermeasure_label"] == "zz-fragile[size=7]" and row["identity"]["countermeasure"]["settings"]["size"] == 7


def test_a_cached_set_that_breaks_its_budget_is_rebuilt(tmp_path, data_root):
    config = GridConfig(preset="smoke", data_root=data_root, cache_dir=str(tmp_path), device="cpu")
    images, gen = recipe.protected_set(config, config.method("ops"), 0)
    spec = recipe.protected_spec(config, config.method("ops"), 0)
    tampered = images.clone()
    tampered[:, :, :2] = 0  # two rows of pixels: far beyond OPS's one pixel
    config.cache.save("protected", spec, {"images": tampered}, {"generate_s": 0.0, "perturbation": {}, "notes": {}})
    with pytest.warns(UserWarning, match="'ops' .* is unusable .*violates its l0 budget.*regenerating"):
        again, gen2 = recipe.protected_set(config, config.method("ops"), 0)
    assert torch.equal(again, images) and not gen2["cached"]
    assert torch.equal(recipe.protected_set(config, config.method("ops"), 0)[0], images)


@pytest.mark.slow
def test_shared_artifacts_are_built_once_before_the_parallel_cells(tmp_path, argv):
    assert main(argv("--methods", "ops", "--defenses", "diffusion", "--jobs", "2")) == 0
    rows = _rows(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    (ddpm,) = (tmp_path / "cache" / "ddpm").glob("*.json")
    made = datetime.fromtimestamp(ddpm.stat().st_mtime, timezone.utc)
    assert all(made <= datetime.fromisoformat(r["started"]) + timedelta(seconds=1) for r in rows)


def test_list_shows_the_budget_of_the_instance(capsys):
    assert main(["list", "methods", "--method-args", "em.eps=16"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^em +L∞ ≤ 16/255", out, re.M) and re.search(r"^em-classwise +L∞ ≤ 8/255", out, re.M)


def test_reuse_carries_finished_cells_whose_id_still_holds_and_runs_the_rest(tmp_path, argv, data_root, monkeypatch):
    first = tmp_path / "first"
    base = ["run", "--preset", "smoke", "--cache-dir", str(tmp_path / "cache"), "--data-root", data_root,
            "--device", "cpu", "--no-progress", "--methods", "ops", "--no-clean"]
    assert main([*base, "--out", str(first), "--defenses", "none,bit_depth"]) == 0
    published = tmp_path / "published.jsonl"
    rows = [json.loads(line) for line in (first / "results.jsonl").read_text().splitlines()]
    stale = next(r for r in rows if r["countermeasure"] == "bit_depth")
    stale["cell_id"] = stale["cell_id"][:-64] + "0" * 64  # made by other code: its id no longer matches
    published.write_text("".join(json.dumps(r) + "\n" for r in rows))

    trained = []
    real = recipe.train_victim
    monkeypatch.setattr(recipe, "train_victim", lambda *a, **k: trained.append(a[6].name) or real(*a, **k))
    assert main(argv("--methods", "ops", "--no-clean", "--defenses", "none,bit_depth", "--reuse", str(published))) == 0
    assert trained == ["bit_depth"], "the cell whose id still holds is carried, the stale one runs"
    carried = _rows(tmp_path)
    assert [r["countermeasure"] for r in carried] == ["none", "bit_depth"]
    original = next(r for r in rows if r["countermeasure"] == "none")
    assert carried[0] == original | {"carried_from": str(published.resolve())}, "copied as it was, labelled"
    assert carried[1].get("carried_from") is None


def test_the_published_rows_are_taken_by_default_and_recompute_takes_none(tmp_path, argv, data_root, monkeypatch,
                                                                         capsys):
    first = tmp_path / "first"
    assert main(["run", "--preset", "smoke", "--cache-dir", str(tmp_path / "cache"), "--data-root", data_root,
                 "--device", "cpu", "--no-progress", "--methods", "ops", "--no-clean", "--out", str(first)]) == 0
    boards = tmp_path / "leaderboards"
    (boards / "sub").mkdir(parents=True)
    (first / "results.jsonl").rename(boards / "sub" / "board.seed0.jsonl")
    (boards / "detection.jsonl").write_text('{"detection_id": "ops/0/mlp", "auroc": 0.7}\n')  # published, no cell
    monkeypatch.setattr(store, "PUBLISHED_DIR", boards)
    trained = []
    real = recipe.train_victim
    monkeypatch.setattr(recipe, "train_victim", lambda *a, **k: trained.append(a[6].name) or real(*a, **k))
    capsys.readouterr()
    with pytest.warns(UserWarning, match="1 of 1 rows were taken from earlier rows"):
        assert main(argv("--methods", "ops", "--no-clean")) == 0
    assert trained == [] and _rows(tmp_path)[0]["carried_from"].endswith("board.seed0.jsonl")
    err = capsys.readouterr().err
    assert "1 finished cell(s) taken from earlier rows instead of computed" in err and "board.seed0.jsonl" in err
    (tmp_path / "run" / "results.jsonl").unlink()
    assert main(argv("--methods", "ops", "--no-clean", "--recompute")) == 0
    assert trained == ["none"] and _rows(tmp_path)[0].get("carried_from") is None


def test_reuse_of_a_missing_path_is_refused_before_any_work(tmp_path, argv, capsys):
    missing = tmp_path / "nope.jsonl"
    assert main(argv("--methods", "ops", "--no-clean", "--reuse", str(missing))) == 2
    assert f"no results at {missing}" in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.jsonl").exists()
